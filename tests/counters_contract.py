"""The runs' counters (schema 9, ``flock_es.log.run_counters``), on every backend.

``EventStoreContract`` inherits ``RunCountersContract``; a backend's test class
implements ``drop_counters`` (its ``runs`` as schema 8 had it, the version set
back to 8), which the upgrade test uses.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from flock_es.domain.events import (
    ArtifactPublished,
    Event,
    EventKind,
    ModelAttempt,
    ModelCalled,
    RunResumed,
    RunStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    make_event,
)
from flock_es.log.ports import EventStore, EventWriter

A, B = "r-count-a", "r-count-b"
_T0 = time.time()


def _ev(run: str, kind: EventKind, body: Any, dt: float = 0.0) -> Event:
    return make_event(run, kind, body, _T0 + dt)


def _called(run: str, task: str, attempt: int, tokens: int | None, cost: float | None) -> Event:
    body = ModelCalled(
        task_id=task, agent="x", call_index=0, model="m", request={}, response="{}",
        tokens_in=tokens, tokens_out=tokens, cost=cost, attempt=attempt,
    )  # fmt: skip
    return _ev(run, EventKind.MODEL_CALLED, body)


def _units() -> list[list[Event]]:
    """Run A: 3 tasks; t1 answered at once, t2 after a failed attempt and two failures
    (one retried there, one final, then taken up by ``--retry-failed``), t3 failed for
    good. Run B's events in a unit between A's (a unit of two runs)."""
    K = EventKind
    sched = [
        _ev(A, K.TASK_SCHEDULED, TaskScheduled(task_id=t, agent="x", sub_index=0, inputs=["a"]))
        for t in ("t1", "t2", "t3")
    ]
    art = ArtifactPublished(id="a", type="Seed", payload={})
    fail = TaskFailed(task_id="t2", agent="x", error="e", will_retry=True)
    final = TaskFailed(task_id="t2", agent="x", error="e", will_retry=False)
    attempt = ModelAttempt(
        task_id="t2", agent="x", call_index=0, attempt=1, outcome="rate_limited", error="429"
    )
    return [
        [
            _ev(A, K.RUN_STARTED, RunStarted(model="m", agents=[], pid=11, host="h1")),
            _ev(A, K.ARTIFACT_PUBLISHED, art),
            *sched,
        ],
        [
            _called(A, "t1", 1, 10, 0.001),
            _ev(A, K.TASK_COMPLETED, TaskCompleted(task_id="t1", agent="x", outputs=[]), 1),
            _ev(B, K.RUN_STARTED, RunStarted(model="m", agents=[], pid=33, host="h3"), 2),
            _called(B, "u1", 1, 7, 0.5),
            _ev(A, K.MODEL_ATTEMPT, attempt, 3),
            _ev(A, K.TASK_FAILED, fail),
            _ev(A, K.TASK_FAILED, final),
            _ev(A, K.TASK_FAILED, TaskFailed(task_id="t3", agent="x", error="e")),
        ],
        [
            _ev(A, K.RUN_RESUMED, RunResumed(model="m", pid=22, host="h2", retried=["t2"]), 4),
            _called(A, "t2", 2, None, None),
            _ev(A, K.TASK_COMPLETED, TaskCompleted(task_id="t2", agent="x", outputs=[]), 5),
        ],
    ]


EXPECTED_A = {
    "scheduled": 3,
    "done": 2,
    "failed": 1,  # t3; t2's final failure was taken up again, and t2 completed
    "calls": 2,
    "tokens_in": 10,
    "tokens_out": 10,
    "cost": 0.001,
    "cost_unknown": 1,
    "failed_attempts": 1,
    "retried": 1,
    "artifacts": 1,
    "last_ts": _T0 + 5,
    "pid": 22,
    "host": "h2",
}


class RunCountersContract:
    """Per-run counters kept by the writer equal the log's (live, rebuilt, upgraded)."""

    async def writer(self, store: EventStore) -> EventWriter:
        raise NotImplementedError

    def drop_counters(self, store: EventStore) -> None:
        """Make ``store``'s ``runs`` table schema 8's, and its version 8."""
        raise NotImplementedError

    async def _write(self, store: EventStore) -> dict[str, dict[str, object]]:
        w = await self.writer(store)
        for unit in _units():
            await w.append(unit)
        await w.close()
        with store.reader() as r:
            return r.run_stats()

    async def test_the_writer_keeps_each_runs_counters(self, store: EventStore) -> None:
        stats = await self._write(store)
        assert stats[A] == pytest.approx(EXPECTED_A)
        b = stats[B]
        assert (b["calls"], b["tokens_in"], b["cost"], b["pid"], b["host"]) == (1, 7, 0.5, 33, "h3")
        assert (b["scheduled"], b["done"], b["failed"], b["artifacts"]) == (0, 0, 0, 0)

    async def test_rebuilt_counters_equal_the_live_ones(self, store: EventStore) -> None:
        stats = await self._write(store)
        store.rebuild_read_models()
        with store.reader() as r:
            assert r.run_stats() == stats

    async def test_an_upgraded_store_gets_its_counters_from_its_events(
        self, store: EventStore
    ) -> None:
        stats = await self._write(store)
        self.drop_counters(store)
        w = await store.open_writer()  # upgrades to schema 9: the counters from the events
        await w.close()
        with store.reader() as r:
            assert r.run_stats() == stats
