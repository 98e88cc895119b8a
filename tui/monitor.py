"""The monitor's model: what the TUI knows about the log, without any widget.

It follows one run of a database through a read-only ``LogReader``: a cheap
``data_version`` check, then ``events(run, after=cursor)`` folded with the same
``apply`` as the runtime, resume, replay and ``show --at``. Time travel folds
the run's events up to a chosen seq into a second state. Nothing here imports
Textual, so it is tested and benchmarked on its own.

Example::

    monitor = Monitor(LogReader(Path("data/flock-es.db")))
    monitor.poll()                 # fold whatever was committed since last time
    state = monitor.state          # the RunState the screen shows
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from flock_es.domain.describe import actor, describe
from flock_es.domain.events import Event
from flock_es.log.reader import LogReader, RunRow
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState

LOG_CAP = 500
"""Event-log lines kept on screen; older lines are dropped (the log is in the DB)."""

CHUNK = 5_000
"""Events folded per poll, so catching up on a large log never freezes the screen."""

Clock = Callable[[], float]


@dataclass(slots=True, frozen=True)
class LogLine:
    """One row of the event-log tail."""

    seq: int
    ts: float
    kind: str
    agent: str
    summary: str


def summarise(e: Event) -> LogLine:
    """A one-line description of an event for the log tail."""
    return LogLine(
        seq=e.seq or 0, ts=e.ts, kind=str(e.kind), agent=actor(e), summary=describe(e)[:200]
    )


class Monitor:
    """Follows one run of a database; the TUI draws ``state`` at ``position``.

    ``run_id=None`` follows the latest run and switches when a new one starts.
    ``clock`` is the wall clock for live elapsed times (tests freeze it).
    """

    def __init__(
        self,
        reader: LogReader,
        run_id: str | None = None,
        *,
        clock: Clock = time.time,
        log_cap: int = LOG_CAP,
        chunk: int = CHUNK,
    ) -> None:
        self.reader = reader
        self.clock = clock
        self.follow_latest = run_id is None
        self.log_cap = log_cap
        self.chunk = chunk
        self.runs: list[RunRow] = []
        self.run_id: str | None = run_id
        self.live = RunState()
        self.cursor = 0
        self.seqs: list[int] = []  # every seq of the run folded so far, for stepping
        self.tail: deque[LogLine] = deque(maxlen=log_cap)
        self.at: int | None = None  # time-travel position, None = live
        self.past = RunState()
        self._past_tail: list[LogLine] = []
        self._data_version: int | None = None
        self.generation = 0  # bumped on run switch: views drop everything they hold
        self.refresh_runs()
        if self.run_id is None and self.runs:
            self.run_id = self.runs[-1].run_id

    # Following the log ---------------------------------------------------

    @property
    def caught_up(self) -> bool:
        return self.run_id is not None and self.cursor >= self._run_last_seq()

    def _run_last_seq(self) -> int:
        for r in self.runs:
            if r.run_id == self.run_id:
                return int(r.last_seq or 0)
        return 0

    def refresh_runs(self) -> None:
        self.runs = self.reader.runs()

    def switch_run(self, run_id: str, *, follow_latest: bool | None = None) -> None:
        """Show ``run_id`` from its first event (live, not time travelling)."""
        if follow_latest is not None:
            self.follow_latest = follow_latest
        if run_id == self.run_id:
            return
        self.run_id = run_id
        self.live = RunState()
        self.cursor = 0
        self.seqs = []
        self.tail.clear()
        self.at = None
        self.past = RunState()
        self._past_tail = []
        self.generation += 1

    def poll(self) -> list[Event]:
        """Fold what was committed since the last poll (at most ``chunk`` events).

        Returns the events folded, so a view can update by diff. Cheap when
        nothing changed: one ``PRAGMA data_version``.
        """
        version = self.reader.data_version()
        if version != self._data_version or not self.caught_up:
            if version != self._data_version:
                self.refresh_runs()
            self._data_version = version
            if self.follow_latest and self.runs and self.runs[-1].run_id != self.run_id:
                self.switch_run(self.runs[-1].run_id)
        if self.run_id is None or self.caught_up:
            return []
        events = self.reader.events(self.run_id, after=self.cursor, limit=self.chunk)
        for e in events:
            apply(self.live, e)
            if e.seq is not None:
                self.seqs.append(e.seq)
                self.cursor = e.seq
        self.tail.extend(summarise(e) for e in events[-self.log_cap :])
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

    # Time travel -----------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The state on screen: the past one while time travelling, else the live one."""
        return self.past if self.at is not None else self.live

    @property
    def position(self) -> int:
        """The seq on screen."""
        return self.at if self.at is not None else self.cursor

    @property
    def index(self) -> int:
        """How many of the run's events are on screen."""
        return bisect_right(self.seqs, self.position)

    def now(self) -> float:
        """The time elapsed times are measured to."""
        s = self.state
        if self.at is not None:
            return s.last_ts
        if s.finished_at is not None:
            return s.finished_at
        return max(self.clock(), s.last_ts)

    def travel(self, seq: int | None) -> list[Event]:
        """Show the run as it was right after ``seq`` (None: back to live).

        Stepping forward folds only the events in between; stepping back folds
        the run again from its start (``events(run, until=seq)``), exactly as
        ``flock-es show --at`` does. Returns the events folded forward, or []
        when the state was rebuilt.
        """
        if seq is None or self.run_id is None:
            self.at = None
            return []
        seq = max(seq, self.seqs[0] if self.seqs else 0)
        if self.seqs and seq >= self.seqs[-1] and self.caught_up:
            seq = self.seqs[-1]
        if self.at is not None and seq >= self.at:
            events = self.reader.events(self.run_id, after=self.at, until=seq)
            for e in events:
                apply(self.past, e)
            self.at = seq
            self._past_tail = self._tail_until(seq)
            return events
        self.past = RunState()
        for e in self.reader.iter_events(self.run_id, until=seq):
            apply(self.past, e)
        self.at = seq
        self._past_tail = self._tail_until(seq)
        return []

    def _tail_until(self, seq: int) -> list[LogLine]:
        assert self.run_id is not None
        i = bisect_right(self.seqs, seq)
        after = self.seqs[i - self.log_cap - 1] if i > self.log_cap else 0
        return [summarise(e) for e in self.reader.events(self.run_id, after=after, until=seq)]

    def step(self, n: int) -> list[Event]:
        """Move ``n`` events forward (or back); returns the events folded forward."""
        if not self.seqs:
            return []
        i = bisect_left(self.seqs, self.position) + n
        i = min(max(i, 0), len(self.seqs) - 1)
        return self.travel(self.seqs[i])

    def seek_fraction(self, fraction: float) -> None:
        """Scrub: jump to ``fraction`` (0..1) of the run's events."""
        if not self.seqs:
            return
        i = round(min(max(fraction, 0.0), 1.0) * (len(self.seqs) - 1))
        self.travel(self.seqs[i])

    @property
    def lines(self) -> list[LogLine]:
        """The event-log tail on screen (at most ``log_cap`` lines)."""
        return self._past_tail if self.at is not None else list(self.tail)

    def run_row(self) -> RunRow | None:
        for r in self.runs:
            if r.run_id == self.run_id:
                return r
        return None
