"""Row sources of the virtual lists: windows over the monitor's ordered index.

Each source answers ``count()`` and ``rows(start, count)`` under the
monitor's lock, touching only the rows asked for. A filter is applied
incrementally: the keys scanned so far are remembered, so following a live
run costs the new keys only.
"""

from __future__ import annotations

import itertools
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text

from flock_es.domain.events import TaskStatus
from flock_es.domain.printable import printable
from flock_es.log.ports import EventReader
from flock_es.projection.state import ArtifactView, TaskView

from . import rows
from .describe import WIDEST
from .monitor import Monitor, summarise
from .on_disk import payloads_of
from .rows import Filter
from .vlist import Row

__all__ = ["ArtifactSource", "FailureSource", "LogSource", "Span", "TaskSource", "TimelineSource"]

FAILED_STYLE = "bold red"


def status_text(status: str) -> Text:
    """A task status; failed ones red and marked, so NO_COLOR still shows them."""
    if status == TaskStatus.FAILED.value:
        return Text("✗ failed", FAILED_STYLE)
    if status == TaskStatus.RUNNING.value:
        return Text(status, "yellow")
    if status == TaskStatus.COMPLETED.value:
        return Text("done", "green")
    return Text(status, "bright_black")


SCAN_SECONDS = 0.03
"""How long one question (a frame, a window of rows) may spend scanning a filter: the
rest of a scan goes on between questions (``ViewServer.scan``), so a filter typed on a
run of 160,000 tasks never holds the screen while it reads the whole log."""


def _deadline(deadline: float | None) -> float:
    return time.perf_counter() + SCAN_SECONDS if deadline is None else deadline


class _Filtered:
    """Keys of an append-only list that pass a filter, extended as the list grows, a
    part at a time until a deadline (the rest on the next call)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.scanned = 0
        self.base: object = None

    def update(
        self,
        base: Sequence[str],
        kept: Callable[[Sequence[str]], list[str]],
        part: int,
        deadline: float,
    ) -> list[str]:
        """The keys that passed so far, after scanning parts of ``base`` until ``deadline``
        (at least one): ``kept`` returns those of a part that pass."""
        if base is not self.base or len(base) < self.scanned:
            self.keys, self.scanned, self.base = [], 0, base
        while self.scanned < len(base):
            keys = base[self.scanned : self.scanned + part]
            self.keys.extend(kept(keys))
            self.scanned += len(keys)
            if time.perf_counter() >= deadline:
                break
        return self.keys

    def behind(self, base: Sequence[str]) -> bool:
        """Whether some of ``base`` is not scanned yet."""
        return base is not self.base or self.scanned < len(base)


class _Base:
    columns: tuple[str, ...] = ()

    PART = 1_000
    """Keys a filter scans between two looks at the clock."""

    def __init__(self, monitor: Monitor, flt: Filter = rows.NO_FILTER) -> None:
        self.m = monitor
        self.flt = flt
        self._filtered = _Filtered()

    def keys(self) -> Sequence[str]:
        raise NotImplementedError

    def keep(self, key: str) -> bool:
        return True

    def _kept(self, keys: Sequence[str]) -> list[str]:
        return [k for k in keys if self.keep(k)]

    def _ordered(self, deadline: float | None = None) -> Sequence[str]:
        base = self.keys()
        if not self.flt:
            return base
        return self._filtered.update(base, self._kept, self.PART, _deadline(deadline))

    def scanning(self) -> bool:
        """Whether the filter has keys left to scan (``count`` goes on with them)."""
        with self.m.lock:
            return bool(self.flt) and self._filtered.behind(self.keys())

    def count(self, deadline: float | None = None) -> int:
        """The rows so far, scanning the filter on until ``deadline`` (default: a slice)."""
        with self.m.lock:
            return len(self._ordered(deadline))

    def rows(self, start: int, count: int) -> list[Row]:
        with self.m.lock:
            keys = self._ordered()[start : start + count]
            return [(k, self.cells(k)) for k in keys]

    def cells(self, key: str) -> tuple[Text, ...]:
        raise NotImplementedError


class TaskSource(_Base):
    """Tasks: ``flight`` (scheduled or running, oldest first), ``all`` or ``failed``."""

    COLUMNS = ("task", "agent", "status", "attempt", "elapsed", "inputs")
    MODES = ("flight", "all", "failed")

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        """A worker column once some task ran on a `flock-es worker` (PostgreSQL scale-out)."""
        return (*self.COLUMNS, "worker") if self.m.index.workers else self.COLUMNS

    def __init__(self, monitor: Monitor, flt: Filter = rows.NO_FILTER, mode: str = "flight"):
        super().__init__(monitor, flt)
        self.mode = mode

    def keys(self) -> Sequence[str]:
        index = self.m.index
        if self.mode == "all":
            return index.tasks
        if self.mode == "failed":
            return index.failed
        return _DictKeys(index.in_flight)

    def _ordered(self, deadline: float | None = None) -> Sequence[str]:
        if self.mode == "flight" and self.flt:  # what is in flight changes: whole each time
            return [k for k in self.m.index.in_flight if self.keep(k)]
        return super()._ordered(deadline)

    def scanning(self) -> bool:
        return not (self.mode == "flight" and self.flt) and super().scanning()

    def keep(self, key: str) -> bool:
        t = self.m.state.tasks.get(key)
        return t is not None and self.flt.matches(agent=t.agent, text=t.id)

    def cells(self, key: str) -> tuple[Text, ...]:
        t = self.m.state.tasks.get(key)
        if t is None:
            return (Text(key),)
        cells = task_cells(t, self.m.now())
        return (*cells, Text(t.worker or "")) if self.m.index.workers else cells


class _DictKeys(Sequence[str]):
    """A dict's keys indexed by position (islice), without copying 100,000 of them."""

    def __init__(self, d: dict[str, None]) -> None:
        self.d = d

    def __len__(self) -> int:
        return len(self.d)

    def __getitem__(self, i: int | slice) -> list[str]:  # type: ignore[override]
        if isinstance(i, slice):
            start, stop, _ = i.indices(len(self.d))
            return list(itertools.islice(self.d, start, stop))
        return list(itertools.islice(self.d, i, i + 1))


def task_cells(t: TaskView, now: float) -> tuple[Text, ...]:
    if t.status is TaskStatus.RUNNING and t.started_at is not None:
        elapsed = rows.fmt_seconds(now - t.started_at)
    elif t.status is TaskStatus.SCHEDULED:
        elapsed = "waiting " + rows.fmt_seconds(now - t.scheduled_at)
    else:
        start = t.started_at if t.started_at is not None else t.scheduled_at
        elapsed = rows.fmt_seconds((t.finished_at or start) - start)
    return (
        Text(t.id),
        Text(t.agent),
        status_text(t.status.value),
        Text(str(t.attempt)),
        Text(elapsed),
        Text(str(len(t.inputs))),
    )


class ArtifactSource(_Base):
    """Artifacts in publish order; their payloads are read from the log (``on_disk``) for
    the rows asked for, and for a filter's words a part of the list at a time."""

    columns = ("type", "producer", "time", "preview")

    PART = 500
    """Artifacts whose payloads a filter's words read in one query."""

    PREVIEWS = 4_096
    """Previews kept for the rows shown again (scrolling back, the next frame)."""

    def __init__(self, monitor: Monitor, flt: Filter = rows.NO_FILTER) -> None:
        super().__init__(monitor, flt)
        self._previews: dict[str, str] = {}

    def keys(self) -> Sequence[str]:
        return self.m.index.artifacts

    def _kept(self, keys: Sequence[str]) -> list[str]:
        arts = self.m.state.artifacts
        views = [a for k in keys if (a := arts.get(k)) is not None]
        # Only a filter's words look at the payload: agent: and type: need no reading.
        payloads = payloads_of(views, self.m.reader) if self.flt.words else {}
        return [a.id for a in views if rows.artifact_matches(a, payloads.get(a.id, {}), self.flt)]

    def rows(self, start: int, count: int) -> list[Row]:
        with self.m.lock:
            arts = self.m.state.artifacts
            keys = self._ordered()[start : start + count]
            views = [a for k in keys if (a := arts.get(k)) is not None]
            previews = self._previews_of(views)
            t0 = self.m.state.started_at
            out: list[Row] = []
            for k in keys:
                a = arts.get(k)
                cells = artifact_cells(a, t0 or a.ts, previews[k]) if a is not None else (Text(k),)
                out.append((k, cells))
            return out

    def _previews_of(self, views: list[ArtifactView]) -> dict[str, str]:
        """The previews of ``views`` by id, the payloads not seen yet read in one query."""
        cache = self._previews
        if len(cache) + len(views) > self.PREVIEWS:
            cache.clear()
        missing = [a for a in views if a.id not in cache]
        for aid, payload in payloads_of(missing, self.m.reader).items() if missing else ():
            cache[aid] = rows.preview(payload, 400)
        return {a.id: cache.get(a.id, "") for a in views}


def artifact_cells(a: ArtifactView, start: float, preview: str) -> tuple[Text, ...]:
    """An artifact's row: type, producer, time since ``start`` and its payload's ``preview``."""
    return (
        Text(a.type),
        Text(a.produced_by),
        Text("+" + rows.fmt_seconds(a.ts - start)),
        Text(preview),
    )


class FailureSource(_Base):
    columns = ("task", "agent", "attempt", "failed at", "error")

    def keys(self) -> Sequence[str]:
        return self.m.index.failed

    def keep(self, key: str) -> bool:
        t = self.m.state.tasks.get(key)
        return t is not None and self.flt.matches(agent=t.agent, text=f"{t.id} {t.error}")

    def cells(self, key: str) -> tuple[Text, ...]:
        t = self.m.state.tasks.get(key)
        if t is None:
            return (Text(key),)
        start = self.m.state.started_at or t.scheduled_at
        # A message may hold a document, and control characters (``printable``).
        error = printable(" ".join((t.error or "")[:WIDEST].split()))
        return (
            Text("✗ " + t.id, FAILED_STYLE),
            Text(t.agent),
            Text(str(t.attempt)),
            Text("+" + rows.fmt_seconds((t.finished_at or start) - start)),
            Text(error, "red"),
        )


class LogSource:
    """The event log, every event of the run (read from the log for the rows on screen).

    With a filter, the matching seqs: the log is scanned ``PART`` events at a time,
    until a question's deadline, then on between questions (``ViewServer.scan``), and
    on as the run grows; the rows on screen are read by their seqs.
    """

    columns = ("seq", "time", "kind", "agent", "event")

    PART = 2_000
    """Events a filter reads between two looks at the clock."""

    def __init__(self, monitor: Monitor, reader: EventReader, flt: Filter = rows.NO_FILTER):
        self.m = monitor
        self.reader = reader
        self.flt = flt
        self._matched: array[int] = array("q")
        self._scanned = 0  # events of the run on screen scanned so far

    def count(self, deadline: float | None = None) -> int:
        if self.flt:
            return len(self._matching(deadline))
        return self.m.ordinal

    def scanning(self) -> bool:
        with self.m.lock:
            return bool(self.flt) and self._scanned < self.m.ordinal

    def _matching(self, deadline: float | None = None) -> array[int]:
        """The matching seqs so far, after scanning on until ``deadline``."""
        with self.m.lock:
            end = self.m.ordinal
            if end < self._scanned:  # travelled back: the events on screen are fewer
                self._matched, self._scanned = array("q"), 0
            until = _deadline(deadline)
            while self._scanned < end:
                lines = self.m.log_lines(self.reader, self._scanned, self.PART)
                if not lines:  # the log has less than the fold saw: nothing more to scan
                    self._scanned = end
                    break
                self._matched.extend(ln.seq for ln in lines if rows.log_matches(ln, self.flt))
                self._scanned += len(lines)
                if time.perf_counter() >= until:
                    break
            return self._matched

    def rows(self, start: int, count: int) -> list[Row]:
        with self.m.lock:
            if self.flt:
                seqs = list(self._matching()[start : start + count])
                lines = [summarise(e) for e in self.reader.events_at(seqs)] if seqs else []
            else:
                lines = self.m.log_lines(self.reader, start, count)
            run_start = self.m.state.started_at or 0.0
        out = []
        for ln in lines:
            cells = rows.log_row(ln, run_start)
            style = FAILED_STYLE if ln.kind == "task.failed" else ""
            out.append((str(ln.seq), tuple(Text(c, style) for c in cells)))
        return out


@dataclass(slots=True, frozen=True)
class Span:
    """One bar of the timeline: a task from its start to its end (or now)."""

    agent: str
    task: str
    start: float
    end: float
    status: str
    attempt: int


class TimelineSource:
    """Every task as a span, grouped by agent (in the run's agent order)."""

    def __init__(self, monitor: Monitor, flt: Filter = rows.NO_FILTER) -> None:
        self.m = monitor
        self.flt = flt

    def _lanes(self) -> list[list[str]]:
        index = self.m.index
        names = list(self.m.state.agents) + [
            a for a in index.by_agent if a not in self.m.state.agents
        ]
        lanes = []
        for name in names:
            if self.flt and not self.flt.matches(agent=name):
                continue
            lanes.append(index.by_agent.get(name, []))
        return lanes

    def count(self) -> int:
        with self.m.lock:
            return sum(len(lane) for lane in self._lanes())

    def spans(self, start: int, count: int, now: float) -> list[Span]:
        out: list[Span] = []
        with self.m.lock:
            tasks = self.m.state.tasks
            for lane in self._lanes():
                if start >= len(lane):
                    start -= len(lane)
                    continue
                for tid in lane[start : start + count - len(out)]:
                    t = tasks.get(tid)
                    if t is None:
                        continue
                    begin = t.started_at if t.started_at is not None else t.scheduled_at
                    end = t.finished_at if t.finished_at is not None else now
                    out.append(
                        Span(t.agent, t.id, begin, max(end, begin), t.status.value, t.attempt)
                    )
                start = 0
                if len(out) >= count:
                    break
        return out

    def bounds(self, now: float) -> tuple[float, float]:
        s = self.m.state
        return (s.started_at or now, max(now, s.last_ts))
