"""``Work.until_idle``: waits for every tracked task (those spawned meanwhile too),
stops at the first failure or the timeout, and serves several waiters at once."""

from __future__ import annotations

import asyncio

import pytest

from flock_es.runtime.work import Work


async def _nap(delay: float) -> None:
    await asyncio.sleep(delay)


async def test_idle_once_every_task_and_those_they_spawn_are_done() -> None:
    work = Work()
    done: list[str] = []

    async def parent() -> None:
        await asyncio.sleep(0.01)
        work.spawn(child(), "child")
        done.append("parent")

    async def child() -> None:
        await asyncio.sleep(0.02)
        done.append("child")

    work.spawn(parent(), "parent")
    assert await work.until_idle() is True
    assert done == ["parent", "child"] and not work.tasks


async def test_the_first_failure_is_raised_without_waiting_for_the_rest() -> None:
    work = Work()

    async def broken() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    slow = work.spawn(_nap(5.0), "slow")
    work.spawn(broken(), "broken")
    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(work.until_idle(), 2.0)
    assert not slow.done()
    await work.cancel_all()


async def test_a_timeout_returns_false_with_tasks_left() -> None:
    work = Work()
    work.spawn(_nap(5.0), "slow")
    assert await work.until_idle(timeout=0.02) is False
    await work.cancel_all()
    assert await work.until_idle() is True


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    work = Work()
    work.spawn(_nap(0.05), "nap")
    first = asyncio.ensure_future(work.until_idle())
    second = asyncio.ensure_future(work.until_idle())
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_tasks_that_report_their_own_end_are_tracked_as_spawned_ones_are() -> None:
    # Engine tasks report their end themselves (no done callback per task): idle once
    # all returned, the first failure raised, and one cancelled before it ever ran is
    # forgotten by cancel_all.
    work = Work()
    done: list[int] = []

    async def ok(i: int) -> None:
        await asyncio.sleep(0.01 * i)
        done.append(i)
        work.ended()

    async def broken() -> None:
        try:
            await asyncio.sleep(0.01)
            raise ValueError("boom")
        except BaseException:
            work.raising()
            raise

    for i in range(3):
        work.spawn_ending(ok(i), f"ok{i}")
    assert await work.until_idle() is True
    assert done == [0, 1, 2] and not work.tasks
    work.spawn_ending(broken(), "broken")
    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(work.until_idle(), 2.0)
    assert not work.tasks
    never = Work()
    never.spawn_ending(ok(0), "never-ran")
    await never.cancel_all()
    assert not never.tasks and await never.until_idle() is True
