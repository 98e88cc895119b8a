"""The latency paths of issue 14 (a): what changed in behaviour, never how fast.

* the offline model's simulated latency (``models/waker.py``): sleepers wake in
  deadline order, a cancelled one is left alone, and every new event loop works;
"""

from __future__ import annotations

import asyncio

import pytest

from flock_es.models.waker import sleep_precisely


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


def test_the_waker_serves_one_loop_after_another() -> None:
    for _ in range(3):
        asyncio.run(sleep_precisely(0.001))
