"""The latency paths of issue 14 (a): what changed in behaviour, never how fast.

* the offline model's simulated latency (``models/waker.py``): sleepers wake in
  deadline order, a cancelled one is left alone, and every new event loop works;
* the SQLite writer's drain thread: units nobody waits for commit in order with
  later ones, and what was queued is committed even if the loop goes away
  without ``close()``;
* an inline chunk whose runs all suspend queues their ``task.started`` (nothing
  waits on that commit) and commits each outcome as its own unit.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.domain.events import Event, EventKind
from flock_es.log import LogReader, LogWriter
from flock_es.models.precise_timers import make_timers_precise, timers_are_precise
from flock_es.models.waker import sleep_precisely
from tests.log_contract import RUN, artifact, started


async def test_sleepers_wake_in_deadline_order() -> None:
    woke: list[str] = []

    async def sleeper(name: str, delay: float) -> None:
        await sleep_precisely(delay)
        woke.append(name)

    await sleep_precisely(0.001)  # the waker's thread is up (starting it takes a while)
    await asyncio.gather(
        sleeper("late", 0.15), sleeper("early", 0.05), sleeper("now", 0), sleeper("mid", 0.1)
    )
    assert woke == ["now", "early", "mid", "late"]


async def test_a_cancelled_sleeper_is_left_alone() -> None:
    task = asyncio.ensure_future(sleep_precisely(0.01))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await sleep_precisely(0.02)  # the cancelled deadline passes; nothing is woken twice
    assert task.cancelled()


async def _on_precise_loop_sleepers_wake_in_order_never_early() -> None:
    loop = asyncio.get_running_loop()
    assert timers_are_precise(loop)
    woke: list[tuple[str, float, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        due = loop.time() + delay
        await sleep_precisely(delay)
        woke.append((name, due, loop.time()))

    cancelled = asyncio.ensure_future(sleep_precisely(0.01))  # the earliest: then skipped
    await asyncio.sleep(0)
    # Deadlines 10 ms apart or more: starting 43 sleepers on a loaded host takes a few
    # ms, and must not reorder them (a sleeper reads ``due`` just before it sleeps).
    many = [sleeper(f"s{i}", 0.06 + (i % 7) * 0.01) for i in range(40)]
    await asyncio.gather(
        *many, sleeper("late", 0.2), sleeper("early", 0.04), sleeper("now", 0), _cancel(cancelled)
    )
    names = [n for n, _, _ in woke]
    assert names[:2] == ["now", "early"] and names[-1] == "late"
    # Deadline order, whatever order they slept in: each due no earlier than the one
    # before, give or take what a sleeper's own start took (its due is read before).
    dues = [due for _, due, _ in woke[1:]]
    assert all(b >= a - 0.005 for a, b in itertools.pairwise(dues))
    # Never before the deadline (the loop may run a timer a clock tick early).
    resolution = time.get_clock_info("monotonic").resolution
    assert all(at >= due - resolution for _, due, at in woke)
    assert cancelled.cancelled()
    # One loop timer serves the sleepers: none is left armed once all woke.
    assert not [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]


async def _cancel(task: asyncio.Future[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_sleepers_of_a_precise_loop_share_one_timer_and_wake_in_order() -> None:
    loop = asyncio.new_event_loop()
    try:
        make_timers_precise(loop)
        loop.run_until_complete(_on_precise_loop_sleepers_wake_in_order_never_early())
    finally:
        loop.close()


def test_the_waker_serves_one_loop_after_another() -> None:
    for _ in range(3):
        asyncio.run(sleep_precisely(0.001))


async def test_units_nobody_waits_for_commit_in_order(tmp_path: Path) -> None:
    w = await LogWriter.open(tmp_path / "w.db")
    w.enqueue([started()])
    for i in range(5):
        w.enqueue([artifact(i)])
    await w.append([artifact(5)])  # its commit comes after every unit queued before it
    with LogReader(tmp_path / "w.db") as reader:
        kinds = [e.kind for e in reader.iter_events(RUN)]
    assert kinds == [EventKind.RUN_STARTED] + [EventKind.ARTIFACT_PUBLISHED] * 6
    await w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.enqueue([artifact(6)])


def test_what_was_queued_commits_when_the_loop_ends_without_close(tmp_path: Path) -> None:
    db = tmp_path / "w.db"

    async def script() -> None:
        w = await LogWriter.open(db)
        w.enqueue([started()])
        w.enqueue([artifact(1)])  # and the script ends, never closing the writer

    asyncio.run(script())
    rows = 0
    for _ in range(200):  # the drain thread finishes on its own time
        con = sqlite3.connect(db)
        rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
        con.close()
        if rows == 2:
            break
        time.sleep(0.05)
    assert rows == 2


@flock_type
class LPing(BaseModel):
    n: int


@flock_type
class LPong(BaseModel):
    n: int


async def test_suspended_runs_queue_their_starts(db_path: Path) -> None:
    flock = Flock(db=db_path)

    async def slow(p: LPing) -> LPong:
        await asyncio.sleep(0.01)
        return LPong(n=p.n)

    for i in range(3):
        flock.agent(f"slow{i}").consumes(LPing).publishes(LPong).with_function(slow)
    await flock.start()
    sink = flock.engine.kernel.sink
    queued: list[list[Event]] = []
    submitted: list[list[Event]] = []
    enqueue, submit = sink.enqueue, sink.submit

    def spy_enqueue(events: list[Event]) -> None:
        queued.append(list(events))
        enqueue(events)

    def spy_submit(events: list[Event]):  # type: ignore[no-untyped-def]
        submitted.append(list(events))
        return submit(events)

    sink.enqueue = spy_enqueue  # type: ignore[method-assign]
    sink.submit = spy_submit  # type: ignore[method-assign]
    await flock.publish(LPing(n=1))
    await flock.run_until_idle()
    await flock.close()
    assert [[e.kind for e in unit] for unit in queued] == [[EventKind.TASK_STARTED] * 3]
    outcomes = [u for u in submitted if any(e.kind is EventKind.TASK_COMPLETED for e in u)]
    assert len(outcomes) == 3
    with LogReader(db_path) as reader:
        kinds = [e.kind for e in reader.iter_events(flock.run_id)]
    assert kinds.count(EventKind.TASK_STARTED) == 3
    # Each start is in the log before its task's outcome.
    assert kinds.index(EventKind.TASK_STARTED) < kinds.index(EventKind.TASK_COMPLETED)


async def test_units_nobody_waits_for_are_held_until_the_loop_moves_on(tmp_path: Path) -> None:
    """A burst of queued units (each agent of a fan-out queueing its task.started) wakes
    the writer's thread once: one transaction, in order, before any later unit."""
    w = await LogWriter.open(tmp_path / "w.db")
    await w.append([started()])
    before = w.commits
    for i in range(5):
        w.enqueue([artifact(i)])
    for _ in range(100):  # released after the current callbacks; committed on the thread's time
        await asyncio.sleep(0.01)
        if w.commits > before:
            break
    assert w.commits == before + 1
    w.enqueue([artifact(5)])
    await w.append([artifact(6)])  # an awaited unit takes the held ones first
    await w.close()
    with LogReader(tmp_path / "w.db") as reader:
        ids = [e.body.get("id") for e in reader.iter_events(RUN)][1:]
    assert ids == [artifact(i).body["id"] for i in range(7)]
