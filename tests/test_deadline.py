"""``within``: the bound on a model-call attempt (``models/deadline.py``) behaves as
``asyncio.timeout`` does: TimeoutError when it runs out, the answer when it does
not, another's cancellation passed on, and many bounds served by one timer."""

from __future__ import annotations

import asyncio
import time

import pytest

from flock_es.models.deadline import _BY_LOOP, within


async def _after(delay: float, value: str) -> str:
    await asyncio.sleep(delay)
    return value


async def test_an_await_that_ends_in_time_gives_its_answer() -> None:
    assert await within(1.0, _after(0.01, "answer")) == "answer"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_an_await_that_runs_out_raises_timeout_error_on_time() -> None:
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError):
        await within(0.05, _after(5.0, "late"))
    assert 0.04 <= time.perf_counter() - t0 < 1.0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancellation_from_outside_is_not_a_timeout() -> None:
    task = asyncio.ensure_future(within(5.0, _after(5.0, "never")))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_error_inside_passes_through() -> None:
    async def broken() -> str:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await within(1.0, broken())


async def test_many_bounds_of_one_length_share_a_timer_and_each_runs_out_alone() -> None:
    # Started one after another: the quick ones answer, the slow ones time out, in
    # any mix, and the bounds of the finished ones leave the queue.
    async def one(i: int) -> str:
        try:
            return await within(0.2, _after(0.01 if i % 2 else 5.0, f"a{i}"))
        except TimeoutError:
            return "timeout"

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == [f"a{i}" if i % 2 else "timeout" for i in range(20)]
    bounds = _BY_LOOP[asyncio.get_running_loop()][0.2]
    assert not bounds.queue and not bounds.armed


async def test_a_later_bound_still_runs_out_after_earlier_ones_ended() -> None:
    quick = asyncio.ensure_future(within(0.3, _after(0.01, "quick")))
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        await within(0.3, _after(5.0, "slow"))
    assert await quick == "quick"


def test_a_closed_loop_leaves_no_bounds_behind() -> None:
    import gc
    import weakref

    # This test's own loop only: a loop another test's fixture still holds (closed,
    # but alive) stays in the table as long as it lives, which is not this module's doing.
    seen: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def bounded() -> str:
        seen.append(weakref.ref(asyncio.get_running_loop()))
        return await within(5.0, _after(0.0, "x"))

    assert asyncio.run(bounded()) == "x"
    gc.collect()
    assert seen[0]() is None  # the table of bounds (and its armed timer) did not keep it


async def test_a_loop_that_cannot_be_weakly_referenced_gets_asyncio_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flock_es.models import deadline

    class NoWeakrefs:
        def get(self, loop: object) -> None:
            raise TypeError("cannot create weak reference")

    monkeypatch.setattr(deadline, "_BY_LOOP", NoWeakrefs())
    assert await within(1.0, _after(0.0, "answer")) == "answer"
    with pytest.raises(TimeoutError):
        await within(0.02, _after(5.0, "late"))
