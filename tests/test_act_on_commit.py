"""Acting on a commit before its callers resume (issue 14 (a)): what changed in
behaviour, never how fast.

* the kernel acts on each unit of a group commit from the commit's callback, in
  commit order, before any caller of that commit resumes; a caller cancelled
  first leaves its unit un-acted (as before); a failed commit halts the kernel
  and reaches the caller;
* ``Work.spawn_eager`` runs a coroutine up to its first suspension at once and
  tracks the rest as a task; an error on that first step is the run's failure;
* end to end: the agent a group commit schedules starts before the runs whose
  outputs that commit carried have resumed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import BatchSpec, Flock, flock_type
from flock_es.domain.event_kinds import EventKind
from flock_es.domain.events import Event
from flock_es.projection.decide import SubscriptionIndex
from flock_es.runtime.kernel import Kernel
from flock_es.runtime.work import Work
from tests.log_contract import artifact


class _Sink:
    """A sink whose commits are futures the test settles, all at once (a group commit)."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[None]] = []

    def submit(self, events: list[Event]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        return fut

    def enqueue(self, events: list[Event]) -> None:
        return None

    def settle(self, exc: Exception | None = None) -> None:
        for fut in self.pending:
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
        self.pending.clear()


class _Actor:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def act(self, events: list[Event]) -> None:
        self.log.append(f"act {events[0].body['id']}")


def _kernel(log: list[str]) -> tuple[Kernel, _Sink]:
    sink = _Sink()
    kernel = Kernel("run-1", sink, SubscriptionIndex.build([]))
    kernel.actor = _Actor(log)
    return kernel, sink


async def test_every_unit_is_acted_on_in_order_before_any_caller_resumes() -> None:
    log: list[str] = []
    kernel, sink = _kernel(log)
    units = [[artifact(i)] for i in range(3)]

    async def caller(unit: list[Event]) -> None:
        await kernel.submit(unit)
        log.append(f"resumed {unit[0].body['id']}")

    callers = [asyncio.ensure_future(caller(u)) for u in units]
    await asyncio.sleep(0)  # every caller waits for its commit
    sink.settle()
    await asyncio.gather(*callers)
    ids = [u[0].body["id"] for u in units]
    assert log == [f"act {i}" for i in ids] + [f"resumed {i}" for i in ids]


async def test_a_caller_cancelled_before_the_commit_leaves_its_unit_unacted() -> None:
    log: list[str] = []
    kernel, sink = _kernel(log)
    first = asyncio.ensure_future(kernel.submit([artifact(1)]))
    second = asyncio.ensure_future(kernel.submit([artifact(2)]))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    sink.settle()
    await second
    assert first.cancelled()
    assert log == [f"act {artifact(2).body['id']}"]


async def test_a_failed_commit_halts_the_kernel_and_reaches_the_caller() -> None:
    log: list[str] = []
    kernel, sink = _kernel(log)
    waiting = asyncio.ensure_future(kernel.submit([artifact(1)]))
    await asyncio.sleep(0)
    sink.settle(OSError("the disk says no"))
    with pytest.raises(OSError, match="the disk says no"):
        await waiting
    assert log == []
    assert kernel.halted is not None


async def test_spawn_eager_runs_the_first_step_at_once() -> None:
    work = Work()
    steps: list[str] = []

    async def job() -> None:
        steps.append("first")
        await asyncio.sleep(0)
        steps.append("rest")

    work.spawn_eager(job(), "job")
    assert steps == ["first"]  # before the caller goes on
    assert work.tasks  # the rest is a tracked task
    assert await work.until_idle(1.0)
    assert steps == ["first", "rest"]

    async def done_at_once() -> None:
        steps.append("whole")

    work.spawn_eager(done_at_once(), "quick")
    assert steps[-1] == "whole" and not work.tasks


async def test_spawn_eager_records_a_first_step_failure() -> None:
    work = Work()

    async def broken() -> None:
        raise ValueError("bad first step")

    work.spawn_eager(broken(), "broken")
    with pytest.raises(ValueError, match="bad first step"):
        await work.until_idle(1.0)


@flock_type
class AoNews(BaseModel):
    n: int


@flock_type
class AoNote(BaseModel):
    n: int


@flock_type
class AoDigest(BaseModel):
    total: int


async def test_the_agent_a_group_commit_schedules_starts_before_its_producers_resume(
    db_path: Path,
) -> None:
    """Four async analysts finish together; the unit of the last to commit schedules
    the editor: the editor starts before that unit's run resumes from its commit
    (the analysts used to resume first, one after another)."""
    flock = Flock(db=db_path)
    log: list[str] = []
    # All four wake in one loop step, so their units are queued together and share a
    # commit however loaded the host (each sleeping 10 ms of its own, they did not always).
    gate = asyncio.Event()
    waiting = [0]

    async def analyse(news: AoNews) -> AoNote:
        waiting[0] += 1
        await gate.wait()
        return AoNote(n=news.n)

    async def release() -> None:
        while waiting[0] < 4:
            await asyncio.sleep(0.001)
        gate.set()

    async def edit(batch: list[AoNote]) -> AoDigest:
        log.append("editor started")
        return AoDigest(total=len(batch))

    for i in range(4):
        flock.agent(f"analyst{i}").consumes(AoNews).publishes(AoNote).with_function(analyse)
    flock.agent("editor").consumes(
        AoNote, batch=BatchSpec(size=4, timeout=timedelta(seconds=30))
    ).publishes(AoDigest).with_function(edit)
    await flock.start()
    executor = flock.engine.executor
    conclude = executor.conclude

    scheduler: list[str] = []  # the analyst whose unit scheduled the editor

    async def spy_conclude(run, settled):  # type: ignore[no-untyped-def]
        outcome = await conclude(run, settled)
        if any(e.kind is EventKind.TASK_SCHEDULED for e in settled[0]):
            scheduler.append(run.agent.name)
        log.append(f"resumed {run.agent.name}")
        return outcome

    executor.conclude = spy_conclude  # type: ignore[method-assign]
    releaser = asyncio.ensure_future(release())
    await flock.publish(AoNews(n=1))
    await flock.run_until_idle()
    await releaser
    digests = await flock.store.get_by_type(AoDigest)
    await flock.close()
    assert [d.total for d in digests] == [4]
    # The unit that scheduled the editor resumes only after the editor started. On a
    # loaded host an analyst's unit can still commit alone, before the others are
    # queued (the writer thread took it first): that analyst resumes before the
    # editor is even scheduled, so only the scheduling unit's order is checked.
    assert len(scheduler) == 1
    assert log.index("editor started") < log.index(f"resumed {scheduler[0]}")


async def test_until_idle_hears_the_last_task_end_in_two_loop_iterations() -> None:
    """The task's done callback, then the waiter: no ``asyncio.wait`` hop between
    (the ticker counts one more: it looks at the waiter before the waiter's step)."""
    work = Work()
    loop = asyncio.get_running_loop()
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if not waiter.done():
            loop.call_soon(tick)

    async def job() -> None:
        await asyncio.sleep(0)
        loop.call_soon(tick)  # counts the iterations from here on

    work.spawn(job(), "job")
    waiter = asyncio.ensure_future(work.until_idle())
    assert await waiter
    assert ticks <= 3  # 4 through asyncio.wait
