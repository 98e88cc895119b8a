"""What the screen asks of a folded run, answered as plain data (no Textual here).

``ViewServer`` owns a ``Monitor`` (the fold and its index) and answers the
screen's questions: a ``Frame`` (status, agent lanes, batches, the counts of
every list), the rows of a window of a list, the spans of the timeline, an
object's detail, and commands (follow, pause, travel, switch run). Answers are
small and picklable, so the same server runs either in the app's process (a
thread folds, the UI reads under the monitor's lock) or in a child process
that folds a 400,000-event log without touching the UI's interpreter
(``flock_es.tui.remote``): keys never wait for the fold.

Example::

    server = ViewServer(Monitor(reader), reader)
    events, told = server.fold()                    # fold what was committed
    frame = server.frame(ViewRequest())
    frame.agents["editor"], frame.lists["tasks"]    # a lane, the tasks' count
    server.rows("tasks", ViewRequest(), 0, 40)      # the first screenful
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rich.markup import escape

from flock_es.domain.events import Event
from flock_es.errors import FlockError
from flock_es.log.ports import EventReader, RunRow
from flock_es.projection.chain_depth import depth_trips
from flock_es.projection.state import ArtifactView, RunState

from . import drill, rows
from .detail import Detail
from .monitor import Monitor
from .on_disk import payload_of
from .sources import (
    SCAN_SECONDS,
    ArtifactSource,
    FailureSource,
    LogSource,
    Span,
    TaskSource,
    TimelineSource,
    task_cells,
)
from .vlist import Row

__all__ = ["LISTS", "Frame", "ViewRequest", "ViewServer"]

LISTS = ("tasks", "artifacts", "log", "failures")
SCAN_ROUND = 0.2
"""How long ``ViewServer.scan`` goes on with a filter's scans before the fold's loop
runs again (queued commands, new events)."""
Pause = Callable[[], None]


@dataclass(slots=True, frozen=True)
class ViewRequest:
    """What the screen shows: its filter, the tasks' mode, the view and the selected agent."""

    flt: rows.Filter = rows.NO_FILTER
    task_mode: str = "flight"
    view: str = "agents"
    agent: str | None = None


@dataclass(slots=True)
class Frame:
    """Everything the screen draws besides the rows of its lists, at one moment."""

    generation: int = -1
    run_id: str | None = None
    runs: list[RunRow] = field(default_factory=list)
    at: int | None = None
    cursor: int = 0
    position: int = 0
    ordinal: int = 0
    total: int = 0
    caught_up: bool = False
    follow_latest: bool = True
    status: str = "waiting"
    live: bool = False
    now: float = 0.0
    started_at: float | None = None
    last_ts: float = 0.0
    program: str = ""
    limiters: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    artifacts: int = 0
    types: dict[str, int] = field(default_factory=dict)  # artifacts per type
    cost: float | None = 0.0
    agents: dict[str, rows.Row] = field(default_factory=dict)
    batches: dict[str, rows.Row] = field(default_factory=dict)
    batch_members: str = ""
    recent: list[str] = field(default_factory=list)
    lists: dict[str, int] = field(default_factory=dict)
    task_columns: tuple[str, ...] = TaskSource.COLUMNS
    timeline: int = 0
    commands_done: int = 0
    # A filter's scan of some list is not done: its count is of the rows found so far.
    filtering: bool = False
    # Travelling back: the run is folded again up to the seq asked for (events folded,
    # events to fold); the state shown is the one before until then.
    rebuilding: tuple[int, int] | None = None
    # Why the last fold read nothing (the database went away), until one reads again.
    trouble: str = ""
    # Matches the circuit breaker refused: by max_agent_iterations, by max_depth.
    trips: tuple[int, int] = (0, 0)
    max_depth: int | None = None

    def run_status(self) -> str:
        return self.status


class ViewServer:
    """Answers the screen from ``monitor``; ``reader`` reads event-log rows and details."""

    def __init__(self, monitor: Monitor, reader: EventReader) -> None:
        self.m = monitor
        self.reader = reader
        self.commands_done = 0
        self.trouble = ""  # the last fold's error (``Frame.trouble``), "" once one reads
        self._sources: dict[tuple[str, rows.Filter, str], Any] = {}
        self._generation = monitor.generation
        self._shown = ViewRequest()  # the request of the last frame: whose scans go on

    # Folding and commands ----------------------------------------------------

    def fold(self, pause: Pause | None = None) -> tuple[list[Event], bool]:
        """Fold the next chunk of what was committed (see ``Monitor.poll``): the events,
        and whether ``trouble`` changed (the screen is to be told). An error reading it
        (a server gone, a file gone) folds nothing and is kept as ``trouble``."""
        was = self.trouble
        try:
            events = self.m.poll(pause)
        except FlockError as exc:
            events, self.trouble = [], str(exc)
        else:
            self.trouble = ""
        return events, self.trouble != was

    def scan(self, pause: Pause | None = None) -> bool:
        """Go on with the filter scans the last frame left unfinished, for about
        ``SCAN_ROUND`` seconds (``pause`` between slices); True if it scanned any.

        The fold's loop calls this when it has nothing to fold, so a filter on a big
        run fills its lists in the background and a frame never waits for a scan."""
        req = self._shown
        if not req.flt:
            return False
        did = False
        until = time.perf_counter() + SCAN_ROUND
        for name in LISTS:
            src = self._source(name, req)
            while src.scanning():
                did = True
                src.count(time.perf_counter() + SCAN_SECONDS)
                if pause is not None:
                    pause()
                if time.perf_counter() >= until:
                    return True
        return did

    def command(self, name: str, args: tuple[Any, ...], pause: Pause | None = None) -> None:
        """Run a command of the screen: follow, pause, resume_live, travel, step, seek,
        seek_ordinal or open (a run)."""
        m = self.m
        if name == "follow":
            m.follow_latest = True
            m.travel(None)
            newest = m.runs[-1].run_id if m.runs else None
            if newest is not None:
                m.switch_run(newest)
        elif name == "pause":
            m.travel(m.cursor, pause)
        elif name == "travel":
            m.travel(args[0], pause)
        elif name == "step":
            m.step(args[0], pause)
        elif name == "seek":
            m.seek_fraction(args[0], pause)
        elif name == "seek_ordinal":
            m.seek_ordinal(args[0], pause)
        elif name == "open":
            m.switch_run(args[0], follow_latest=False)
        else:
            raise ValueError(f"unknown command {name!r}")
        self.commands_done += 1

    # Queries ------------------------------------------------------------------

    def _source(self, name: str, req: ViewRequest) -> Any:
        if self.m.generation != self._generation:
            self._sources.clear()
            self._generation = self.m.generation
        key = (name, req.flt, req.task_mode if name == "tasks" else "")
        src = self._sources.get(key)
        if src is None:
            if len(self._sources) > 32:
                self._sources.clear()
            if name == "tasks":
                src = TaskSource(self.m, req.flt, req.task_mode)
            elif name == "log":
                src = LogSource(self.m, self.reader, req.flt)
            elif name == "timeline":
                src = TimelineSource(self.m, req.flt)
            else:
                src = {"artifacts": ArtifactSource, "failures": FailureSource}[name](
                    self.m, req.flt
                )
            self._sources[key] = src
        return src

    def rows(self, name: str, req: ViewRequest, start: int, count: int) -> list[Row]:
        """Rows ``start .. start+count`` of list ``name`` under the request's filter."""
        return list(self._source(name, req).rows(start, count))

    def spans(self, req: ViewRequest, start: int, count: int, now: float) -> list[Span]:
        return list(self._source("timeline", req).spans(start, count, now))

    def detail(self, kind: str, key: str) -> Detail | None:
        with self.m.lock:
            return drill.detail(kind, key, self.m.state, self.m.index, self.reader)

    def artifact(self, key: str) -> tuple[ArtifactView | None, int]:
        """An artifact and how many tasks consumed it (the payload pane)."""
        with self.m.lock:
            a = self.m.state.artifacts.get(key)
            consumers = len(self.m.index.consumers.get(key, []))
        if a is None:
            return None, consumers
        return replace(a, payload=payload_of(a, self.reader)), consumers

    def frame(self, req: ViewRequest) -> Frame:
        """The screen's state now (status, lanes, batches, list sizes)."""
        m = self.m
        with m.lock:
            f = Frame(generation=m.generation, run_id=m.run_id, runs=list(m.runs))
            f.follow_latest, f.commands_done = m.follow_latest, self.commands_done
            f.rebuilding, f.trouble = m.rebuilding, self.trouble
            if m.run_id is None:
                return f
            s = m.state
            f.at, f.cursor, f.position = m.at, m.cursor, m.position
            f.ordinal, f.total, f.caught_up = m.ordinal, len(m.seqs), m.caught_up
            f.status, f.live, f.now = m.run_status(), m.is_live(), m.now()
            f.started_at, f.last_ts = s.started_at, s.last_ts
            f.program = (s.program or "").rsplit("/", 1)[-1]
            f.limiters = {k: dict(v) for k, v in s.limiters.items()}
            _totals(f, s)
            f.agents = rows.agent_rows(s, m.index, req.flt, loading=not m.caught_up)
            f.batches = rows.batch_rows(s, f.now, req.flt)
            f.batch_members = _batch_members(s)
            # No row selected yet: the table's cursor will start on its first lane.
            f.recent = self._recent(req.agent or next(iter(f.agents), None), f.now)
            # A filter is scanned for a slice per frame, the rest between questions (scan).
            self._shown = req
            until = time.perf_counter() + SCAN_SECONDS
            for name in LISTS:
                f.lists[name] = self._source(name, req).count(until)
            f.filtering = any(self._source(name, req).scanning() for name in LISTS)
            # Every frame, so switching to the timeline needs no frame of its own.
            f.timeline = self._source("timeline", req).count()
            f.task_columns = self._source("tasks", req).columns
        return f

    def _recent(self, agent: str | None, now: float) -> list[str]:
        """The most recent tasks of ``agent`` (the Agents view, under its lanes)."""
        if agent is None:
            return []
        m = self.m
        parts = [
            f"[b]{escape(agent)}[/b]: most recent tasks (3: all tasks, m: in flight/all/failed)"
        ]
        for tid in reversed(m.index.by_agent.get(agent, [])[-8:]):
            t = m.state.tasks.get(tid)
            if t is not None:
                cells = [c.plain for c in task_cells(t, now)]
                parts.append(escape(f"{cells[0]}  {cells[2]}  {cells[4]}"))
        return parts


def _totals(f: Frame, s: RunState) -> None:
    counts = {k: 0 for k in ("scheduled", "running", "completed", "failed")}
    for a in s.agents.values():
        counts["running"] += a.running
        counts["completed"] += a.done
        counts["failed"] += a.failed
        counts["scheduled"] += max(a.scheduled - a.done - a.failed - a.running, 0)
    cost = [a.cost for a in s.agents.values()]
    f.counts = counts
    f.cost = None if any(c is None for c in cost) else sum(c or 0.0 for c in cost)
    f.artifacts = len(s.artifacts)
    f.types = s.artifact_counts()
    deep = sum(depth_trips(s.circuit_trips).values())
    f.trips, f.max_depth = (len(s.circuit_trips) - deep, deep), s.max_depth


def _batch_members(s: RunState) -> str:
    parts = []
    for (agent, sub), b in sorted(s.batches.items()):
        kinds = [s.artifacts[i].type if i in s.artifacts else "?" for i in b.members[:20]]
        parts.append(
            f"[b]{agent}[{sub}][/b] holds {len(b.members)}"
            + (f" of {b.size}" if b.size else "")
            + ": "
            + ", ".join(kinds)
        )
    return "\n".join(parts) or "no batch is filling"
