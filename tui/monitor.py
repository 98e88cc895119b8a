"""The monitor's model: what the TUI knows about the log, without any widget.

It follows one run through a read-only ``EventReader`` (SQLite or PostgreSQL,
from ``flock_es.log.open_store``): a cheap ``data_version`` check, then
``events(run, after=cursor)`` folded with the same ``apply`` as the runtime,
resume, replay and ``show --at`` (less the payloads and answers the log holds:
``on_disk``), plus a ``RunIndex`` for ordered windows and aggregates. Time
travel folds the run's events up to a chosen seq into a second state. The app
calls ``poll`` and ``travel`` from one worker thread and reads under ``lock``
from the UI thread. Nothing here imports Textual.

Example::

    monitor = Monitor(open_store("data/flock-es.db", readonly=True).reader())
    monitor.catch_up()              # fold whatever was committed so far
    monitor.state.agents            # the RunState the screen shows
"""

from __future__ import annotations

import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from flock_es.domain.events import Event, RunStatus
from flock_es.log.liveness import live_status
from flock_es.log.ports import EventReader, RunRow
from flock_es.log.unfit_event import FOLD_FAULTS, unfit_event
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState

from .describe import summarise
from .index import RunIndex
from .on_disk import shed

__all__ = ["CHUNK", "Clock", "LogLine", "Monitor", "summarise"]

CHUNK = 2_000
"""Events folded per poll (under the lock): the UI thread never waits longer than one chunk."""

SLICE = 250
"""Events folded under one hold of the lock (a few milliseconds)."""

LIVENESS_SECONDS = 2.0
"""How often an unfinished run's process is checked (a cheap ``kill(pid, 0)``)."""

Clock = Callable[[], float]


@dataclass(slots=True, frozen=True)
class LogLine:
    """One row of the event log."""

    seq: int
    ts: float
    kind: str
    agent: str
    summary: str


class Monitor:
    """Follows one run of a database; the TUI draws ``state`` at ``position``.

    ``run_id=None`` follows the latest run and switches when a new one starts.
    ``clock`` is the wall clock for live elapsed times (tests freeze it).
    """

    def __init__(
        self,
        reader: EventReader,
        run_id: str | None = None,
        *,
        clock: Clock = time.time,
        chunk: int = CHUNK,
    ) -> None:
        self.reader = reader
        self.clock = clock
        self.lock = threading.RLock()
        self.follow_latest = run_id is None
        self.chunk = chunk
        self.runs: list[RunRow] = []
        self.run_id: str | None = run_id
        self.live = RunState()
        self.live_index = RunIndex()
        self.cursor = 0
        self.at: int | None = None  # time-travel position, None = live
        self.past = RunState()
        self.past_index = RunIndex()
        self._data_version: int | None = None
        self._liveness: tuple[float, str] = (0.0, "")
        self.generation = 0  # bumped on run switch: views drop everything they hold
        # While travel folds the run again up to a seq: (events folded, events to fold).
        self.rebuilding: tuple[int, int] | None = None
        self.refresh_runs()
        if self.run_id is None and self.runs:
            self.run_id = self._newest()

    # Following the log ---------------------------------------------------

    def _newest(self) -> str | None:
        return self.runs[-1].run_id if self.runs else None

    @property
    def seqs(self) -> array[int]:
        """Every seq of the run folded so far (for stepping and the event log)."""
        return self.live_index.seqs

    @property
    def caught_up(self) -> bool:
        return self.run_id is not None and self.cursor >= self._run_last_seq()

    def _run_last_seq(self) -> int:
        row = self.run_row()
        return int(row.last_seq or 0) if row is not None else 0

    def progress(self) -> float:
        """How much of the run's committed log is folded, 0..1."""
        row = self.run_row()
        if row is None or not row.last_seq:
            return 1.0
        first = int(row.first_seq or 0)
        span = max(int(row.last_seq) - first, 1)
        return min(max((self.cursor - first) / span, 0.0), 1.0)

    def refresh_runs(self) -> None:
        self.runs = self.reader.runs()

    def switch_run(self, run_id: str, *, follow_latest: bool | None = None) -> None:
        """Show ``run_id`` from its first event (live, not time travelling)."""
        with self.lock:
            if follow_latest is not None:
                self.follow_latest = follow_latest
            if run_id == self.run_id:
                return
            self.run_id = run_id
            self.live = RunState()
            self.live_index = RunIndex()
            self.cursor = 0
            self.at = None
            self.past = RunState()
            self.past_index = RunIndex()
            self._liveness = (0.0, "")
            self.generation += 1

    def poll(self, pause: Callable[[], None] | None = None) -> list[Event]:
        """Fold what was committed since the last poll (at most ``chunk`` events).

        Returns the events folded. Cheap when nothing changed: one ``data_version``.
        ``pause`` is called (outside the lock) every ``SLICE`` events: the app's
        worker sleeps there while the UI thread is answering a key.
        """
        version = self.reader.data_version()
        if version != self._data_version or not self.caught_up:
            if version != self._data_version:
                self.refresh_runs()
            self._data_version = version
            newest = self._newest()
            if self.follow_latest and newest is not None and newest != self.run_id:
                self.switch_run(newest)
        if self.run_id is None or self.caught_up:
            return []
        events = self.reader.events(self.run_id, after=self.cursor, limit=self.chunk)
        e = None
        try:  # around the loop, not in it: a healthy log's fold pays nothing for it
            for i in range(0, len(events), SLICE):
                if pause is not None:
                    pause()
                with self.lock:
                    for e in events[i : i + SLICE]:
                        _fold(self.live, self.live_index, e)
                        if e.seq is not None:
                            self.cursor = e.seq
        except FOLD_FAULTS:  # a body that is JSON but not its kind's (``unfit_event``)
            if (damaged := unfit_event(self.reader.path, e)) is None:
                raise
            raise damaged from None  # the screen shows it as the fold's trouble
        if not events:  # the runs row is ahead of what we can see yet; retry next poll
            self._data_version = None
        return events

    def catch_up(self) -> int:
        """Poll until everything committed so far is folded; returns events folded."""
        n = 0
        while True:
            got = self.poll()
            n += len(got)
            if not got:
                return n

    # Status -----------------------------------------------------------------

    def run_status(self) -> str:
        """What the run is, truthfully: never "interrupted" for a run still loading.

        ``loading 35%`` until the fold has caught up with the log; then the
        recorded status, or for a run nobody closed, whether its process lives.
        """
        s = self.state
        if self.run_id is None:
            return "waiting"
        if s.finished_status and (self.at is not None or self.caught_up):
            return s.finished_status
        if self.at is not None:
            return "running"  # as it was at that point in time
        if not self.caught_up:
            return f"loading {int(self.progress() * 100)}%"
        when, status = self._liveness
        if not status or time.monotonic() - when > LIVENESS_SECONDS:
            pending = bool(self.live_index.in_flight) or bool(s.batches) or bool(s.unreleased)
            status = live_status(None, s.pid, s.host, pending, bool(self.live_index.failed))
            self._liveness = (time.monotonic(), status)
        return status

    def is_live(self) -> bool:
        """Whether elapsed times on screen move: a running run, shown live."""
        return self.at is None and self.run_status() == RunStatus.RUNNING.value

    # Time travel -----------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The state on screen: the past one while time travelling, else the live one."""
        return self.past if self.at is not None else self.live

    @property
    def index(self) -> RunIndex:
        """The index of the state on screen."""
        return self.past_index if self.at is not None else self.live_index

    @property
    def position(self) -> int:
        """The seq on screen."""
        return self.at if self.at is not None else self.cursor

    @property
    def ordinal(self) -> int:
        """How many of the run's events are on screen (event N of M: the scrub bar and ``g``)."""
        return bisect_right(self.seqs, self.position)

    def now(self) -> float:
        """The time elapsed times are measured to; frozen unless the run is running."""
        s = self.state
        if self.at is not None:
            return s.last_ts
        if s.finished_at is not None:
            return s.finished_at
        if not self.caught_up or self.run_status() != RunStatus.RUNNING.value:
            return s.last_ts  # a crashed or loading run: the clock stops at its last event
        return max(self.clock(), s.last_ts)

    def travel(self, seq: int | None, pause: Callable[[], None] | None = None) -> list[Event]:
        """Show the run as it was right after ``seq`` (None: back to live).

        Stepping forward folds only the events in between; stepping back folds
        the run again from its start, exactly as ``flock-es show --at`` does.
        Returns the events folded forward, or [] when the state was rebuilt.
        ``pause`` is called every ``SLICE`` events of a rebuild (the child process
        answers the screen there; the state on screen stays the old one until done).
        """
        if seq is None or self.run_id is None:
            with self.lock:
                # Back to live: the past state goes (as large as the live one on a big
                # run); the next travel folds it again anyway, from the live position.
                self.at = None
                self.past, self.past_index = RunState(), RunIndex()
            return []
        seqs = self.seqs
        seq = max(seq, seqs[0] if seqs else 0)
        if seqs and seq >= seqs[-1] and self.caught_up:
            seq = seqs[-1]
        if self.at is not None and seq >= self.at:
            events = self.reader.events(self.run_id, after=self.at, until=seq)
            with self.lock:
                for e in events:
                    _fold(self.past, self.past_index, e)
                self.at = seq
            return events
        past, index = RunState(), RunIndex()
        total = bisect_right(seqs, seq)
        try:
            for n, e in enumerate(self.reader.iter_events(self.run_id, until=seq)):
                if n % SLICE == 0:
                    self.rebuilding = (n, total)  # the screen says how far it has come
                    if pause is not None:
                        pause()
                _fold(past, index, e)
            with self.lock:
                self.past, self.past_index, self.at = past, index, seq
        finally:
            self.rebuilding = None
        return []

    def step(self, n: int, pause: Callable[[], None] | None = None) -> list[Event]:
        """Move ``n`` events forward (or back); returns the events folded forward."""
        if not self.seqs:
            return []
        i = bisect_left(self.seqs, self.position) + n
        i = min(max(i, 0), len(self.seqs) - 1)
        return self.travel(self.seqs[i], pause)

    def seek_fraction(self, fraction: float, pause: Callable[[], None] | None = None) -> None:
        """Scrub: jump to ``fraction`` (0..1) of the run's events."""
        if not self.seqs:
            return
        i = round(min(max(fraction, 0.0), 1.0) * (len(self.seqs) - 1))
        self.travel(self.seqs[i], pause)

    def seek_ordinal(self, n: int, pause: Callable[[], None] | None = None) -> None:
        """Jump to the run's ``n``-th event (1-based), the number the scrub bar shows."""
        if self.seqs:
            self.travel(self.seqs[min(max(n, 1), len(self.seqs)) - 1], pause)

    def log_lines(self, reader: EventReader, start: int, count: int) -> list[LogLine]:
        """Event-log rows ``start .. start+count`` of the events on screen (read on demand)."""
        window = self.seqs[start : min(start + count, self.ordinal)]
        if not window or self.run_id is None:
            return []
        events = reader.events(self.run_id, after=window[0] - 1, until=window[-1])
        return [summarise(e) for e in events]

    def run_row(self) -> RunRow | None:
        for r in reversed(self.runs):
            if r.run_id == self.run_id:
                return r
        return None


def _fold(state: RunState, index: RunIndex, e: Event) -> None:
    """Fold ``e`` into the screen's ``state`` and its ``index``, without the content the
    log holds (``on_disk.shed``: payloads and answers are read back to be shown)."""
    apply(state, e)
    index.add(state, e)
    shed(state, e)
