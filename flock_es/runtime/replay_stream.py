"""The record as replay reads it: a stream with a short look ahead.

A transaction (the events sharing one timestamp) can be huge: publishing
100,000 artifacts is one unit of 900,000 events. Replay needs little of what
lies ahead of the event it checks: the decisions right after an artifact, and
the completion of the task whose output it is (a few events on). ``Lookahead``
reads just that far, so a replay holds its fold plus a few events, not a unit.

Example::

    ahead = Lookahead(reader.iter_events(run_id), on_read=note)
    while (e := ahead.pop()) is not None:
        decisions = ahead.decisions_after(e)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from flock_es.domain.events import Event, EventKind
from flock_es.projection.decide import DECISIONS

__all__ = ["Lookahead", "recorded_decisions", "transactions"]


def recorded_decisions(events: list[Event], i: int) -> list[Event]:
    """The decisions recorded for the artifact at ``events[i]``.

    They follow it in its transaction, whose events share one timestamp (the
    engine decides a whole unit at one ``now``); the task's own completion may
    sit among them.
    """
    out = []
    ts = events[i].ts
    # Walk by index: slicing ``events[i + 1:]`` copies the rest of the log per
    # artifact, which made a replay quadratic in the log's length.
    for j in range(i + 1, len(events)):
        e = events[j]
        if e.ts != ts:
            break
        if e.kind is EventKind.TASK_COMPLETED:
            continue
        if e.kind not in DECISIONS:
            break
        out.append(e)
    return out


def transactions(events: Iterable[Event]) -> Iterator[list[Event]]:
    """The record in runs of events that share a timestamp (each holds whole units)."""
    unit: list[Event] = []
    for e in events:
        if unit and e.ts != unit[0].ts:
            yield unit
            unit = []
        unit.append(e)
    if unit:
        yield unit


class Lookahead:
    """The record's events in order, with the ones not yet taken buffered on demand.

    ``on_read`` sees every event once, as it is read from the record (before it
    is taken): where replay indexes the recorded requests and completions that a
    re-execution needs, ahead of the outputs that trigger it.
    """

    def __init__(self, events: Iterable[Event], on_read: Callable[[Event], None]) -> None:
        self._it = iter(events)
        self._buf: deque[Event] = deque()
        self._on_read = on_read

    def _read(self) -> bool:
        e = next(self._it, None)
        if e is None:
            return False
        self._on_read(e)
        self._buf.append(e)
        return True

    def pop(self) -> Event | None:
        """The next event, or None at the end of the record."""
        if not self._buf and not self._read():
            return None
        return self._buf.popleft()

    def ahead(self, k: int) -> Event | None:
        """The ``k``-th event after the last one taken (0: the next), or None."""
        while len(self._buf) <= k:
            if not self._read():
                return None
        return self._buf[k]

    def decisions_after(self, e: Event) -> list[Event]:
        """``recorded_decisions`` of ``e``, the event just taken."""
        out = []
        k = 0
        while (nxt := self.ahead(k)) is not None and nxt.ts == e.ts:
            if nxt.kind is not EventKind.TASK_COMPLETED:
                if nxt.kind not in DECISIONS:
                    break
                out.append(nxt)
            k += 1
        return out

    def read_unit_until(self, found: Callable[[], bool], ts: float) -> None:
        """Read on through the transaction at ``ts`` until ``found()`` (or its end)."""
        k = 0
        while not found() and (nxt := self.ahead(k)) is not None and nxt.ts == ts:
            k += 1

    def rest_of_unit(self, ts: float) -> list[Event]:
        """The events of the transaction at ``ts`` not yet taken (read, not taken)."""
        k = 0
        while (nxt := self.ahead(k)) is not None and nxt.ts == ts:
            k += 1
        return list(self._buf)[:k]

    def count_rest(self) -> int:
        """How many events are left (the record is read to its end)."""
        return len(self._buf) + sum(1 for _ in self._it)
