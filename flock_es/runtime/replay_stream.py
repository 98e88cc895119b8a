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

import itertools
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from flock_es.domain.events import (
    ArtifactPublished,
    Event,
    EventKind,
    ModelAttempt,
    ModelCalled,
    TaskCompleted,
    body_as,
)
from flock_es.log.unfit_event import FOLD_FAULTS
from flock_es.projection.decide import DECISIONS
from flock_es.projection.fold import artifact_view
from flock_es.projection.state import ArtifactView, RunState
from flock_es.runtime.artifacts import RunArtifacts

__all__ = [
    "NOTED",
    "READ_AHEAD",
    "DeferredViews",
    "Lookahead",
    "RecordIndex",
    "recorded_decisions",
    "transactions",
]

# Enum members as module globals for the per-event paths: in Python 3.11 ``EventKind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_COMPLETED = EventKind.TASK_COMPLETED
_CALLED = EventKind.MODEL_CALLED
_ATTEMPT = EventKind.MODEL_ATTEMPT

READ_AHEAD = 256
"""Deferred artifacts whose views one read of the log brings, ahead of their decisions."""


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
        if e.kind is _COMPLETED:
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
    re-execution needs, ahead of the outputs that trigger it. The record is read
    ``PAGE`` events at a time: a call per event into the stream (and a check of
    the buffer per look) was a tenth of a replay's time; a page is still a few
    KB, whatever the size of the transaction it is in.
    """

    PAGE = 64

    def __init__(
        self,
        events: Iterable[Event],
        on_read: Callable[[Event], None],
        kinds: Collection[EventKind] | None = None,
    ) -> None:
        self._it = iter(events)
        self._buf: deque[Event] = deque()
        self._on_read = on_read
        self._kinds = kinds  # None: ``on_read`` sees every kind, else only these
        # The event ``on_read`` raised on (a body without a field it reads), not yet
        # taken: the one a replay names as not readable.
        self.unread: Event | None = None

    def _read(self) -> bool:
        page = list(itertools.islice(self._it, self.PAGE))
        if not page:
            return False
        on_read, kinds = self._on_read, self._kinds
        e = None
        try:  # around the loop: a healthy record pays nothing for it
            for e in page:
                if kinds is None or e.kind in kinds:
                    on_read(e)
        except FOLD_FAULTS:
            self.unread = e
            raise
        self._buf.extend(page)
        return True

    def pop(self) -> Event | None:
        """The next event, or None at the end of the record."""
        buf = self._buf
        if not buf and not self._read():
            return None
        return buf.popleft()

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
        ts = e.ts
        buf = self._buf
        while True:
            if k >= len(buf) and not self._read():
                break
            nxt = buf[k]
            if nxt.ts != ts:
                break
            if nxt.kind is not _COMPLETED:
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


NOTED = frozenset({EventKind.MODEL_CALLED, EventKind.MODEL_ATTEMPT, EventKind.TASK_COMPLETED})
"""The kinds ``RecordIndex.note`` indexes."""


class RecordIndex:
    """What a task's re-execution needs of the record, indexed as the record is read
    (``note``, ahead of the outputs that trigger it): its recorded requests by (task,
    call index), its completion, and the calls it made in vain (``failures``: the
    last failed attempt of a call that got no answer, a 400 say, which the call then
    raises again). Requests and completions are dropped once the transaction holding
    the completion is walked (``end_unit``), failures once the task's end is
    (``end_unit``, ``forget_failures``)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], dict[str, Any]] = {}
        self.completion: dict[str, Event] = {}
        self.ends: deque[str] = deque()  # the completions' task ids, in the order read
        # ``model.attempt`` bodies (with their ``seq``) by (task, call index).
        self.failures: dict[tuple[str, int], dict[str, Any]] = {}

    def note(self, e: Event) -> None:
        """Index ``e`` (of a kind in ``NOTED``)."""
        if e.kind is _CALLED:
            call = body_as(e, ModelCalled)
            key = (call["task_id"], call["call_index"])
            self.requests.setdefault(key, call.get("request", {}))
        elif e.kind is _ATTEMPT:
            failed = body_as(e, ModelAttempt)
            # The call's last attempt, not retried: the call raised its error (an answer
            # that did not validate is an answer, recorded and served as such). The
            # latest wins: a task re-run after a crash may have made the call again.
            if not failed.get("will_retry") and failed["outcome"] != "invalid_output":
                key = (failed["task_id"], failed["call_index"])
                self.failures[key] = dict(failed, seq=e.seq or 0)
        elif e.kind is _COMPLETED:
            tid = body_as(e, TaskCompleted)["task_id"]
            if tid not in self.completion:
                self.completion[tid] = e
                self.ends.append(tid)

    def end_unit(self, ts: float | None) -> list[str]:
        """The transaction at ``ts`` is walked: forget its completed tasks (returned).

        They are the first in ``ends``: a transaction's events are contiguous, and
        each one's completions are forgotten as it ends, so the completions read
        ahead (a page of later transactions) are not scanned at every end."""
        completion, ends, requests = self.completion, self.ends, self.requests
        done: list[str] = []
        while ends and completion[ends[0]].ts == ts:
            task_id = ends.popleft()
            ended = completion.pop(task_id)
            done.append(task_id)
            index = 0
            while requests and requests.pop((task_id, index), None) is not None:
                index += 1
            if self.failures:  # a call failed, and the task completed all the same
                self.forget_failures(task_id, ended.seq)
        return done

    def forget_failures(self, task_id: str, seq: int | None) -> None:
        """The end of ``task_id`` at ``seq`` is walked: forget the failures of its calls
        recorded up to there (not those of a later run of it, read ahead already)."""
        failures = self.failures
        if not failures:
            return
        upto = seq or 0
        for key in [k for k, f in failures.items() if k[0] == task_id and f["seq"] <= upto]:
            del failures[key]


class DeferredViews:
    """The views of deferred artifacts as replay decides them again, at their
    ``artifact.decided``: a compact state holds only their ids and seqs.

    With the recorded run's database, each is read from it just before its
    decision is applied, with those of the next ones still to decide (one read
    per ``READ_AHEAD``, not one per artifact); without one, the view is kept
    from its publish, as a state that lets go of nothing keeps every view.
    """

    def __init__(self, state: RunState, artifacts: RunArtifacts) -> None:
        self.state = state
        self.artifacts = artifacts
        self.views: dict[str, ArtifactView] = {}

    def published(self, b: ArtifactPublished, e: Event) -> None:
        """A deferred artifact was folded (``e``, body ``b``)."""
        if self.artifacts.board is None and b["id"] not in self.state.artifacts:
            self.views[b["id"]] = artifact_view(b, e.seq, e.ts, e.size)

    def read_ahead(self, aid: str) -> None:
        """Before ``aid``'s ``artifact.decided`` is folded (its seq still known)."""
        if aid in self.views or aid in self.state.artifacts or self.artifacts.board is None:
            return
        ahead = list(itertools.islice(self.state.undecided, READ_AHEAD))
        if aid not in ahead:
            ahead.insert(0, aid)
        self.views.update((v.id, v) for v in self.artifacts.undecided(ahead))

    def take(self, aid: str) -> ArtifactView | None:
        """The view of ``aid``, now being decided (None: the run has no such artifact)."""
        return self.views.pop(aid, None)
