"""Precise loop timers (``models/precise_timers.py``): what changes in behaviour, never how fast.

The loop's timers still fire in order and only once due; the timer's own
readiness never reaches the loop's callbacks; each loop's timer is closed with
it; loops it does not know are left as they are; a run's ``Flock`` installs it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import selectors
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock
from flock_es.models.precise_timers import SPIN, PreciseEpollSelector, make_timers_precise

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll and timerfd")


class Ping(BaseModel):
    n: int


def _stamp(
    fired: list[tuple[str, bool]], loop: asyncio.AbstractEventLoop, name: str, when: float
) -> None:
    """A timer's callback: its name, and whether it ran at or after its deadline."""
    fired.append((name, loop.time() >= when))


def _selector(loop: asyncio.AbstractEventLoop) -> object:
    return getattr(loop, "_selector", None)


@linux
def test_timers_fire_in_deadline_order_and_only_when_due() -> None:
    async def main() -> list[tuple[str, bool]]:
        loop = asyncio.get_running_loop()
        assert make_timers_precise(loop)
        assert type(_selector(loop)) is PreciseEpollSelector
        fired: list[tuple[str, bool]] = []
        for name, delay in (("late", 0.06), ("early", 0.02), ("mid", 0.04)):
            when = loop.time() + delay
            loop.call_at(when, functools.partial(_stamp, fired, loop, name, when))
        cancelled = loop.call_later(0.03, lambda: fired.append(("cancelled", True)))
        cancelled.cancel()
        await asyncio.sleep(0.08)
        return fired

    assert asyncio.run(main()) == [("early", True), ("mid", True), ("late", True)]


@linux
def test_io_and_sleeps_share_the_loop() -> None:
    """The timer's fd is consumed by the selector: readers of other fds still work."""

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        make_timers_precise(loop)
        r, w = os.pipe()
        got: asyncio.Future[bytes] = loop.create_future()
        loop.add_reader(r, lambda: got.set_result(os.read(r, 10)))
        loop.call_later(0.02, os.write, w, b"hi")
        for _ in range(5):  # many timer wake-ups, none reported to the loop as I/O
            await asyncio.sleep(0.002)
        data = await got
        loop.remove_reader(r)
        os.close(r)
        os.close(w)
        return data

    assert asyncio.run(main()) == b"hi"


@linux
def test_each_loop_closes_its_timer() -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main() -> None:
        assert make_timers_precise(asyncio.get_running_loop())
        await asyncio.sleep(0.001)

    asyncio.run(main())
    before = fds()
    for _ in range(20):
        asyncio.run(main())
    assert fds() <= before


def test_other_loops_and_the_switch_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        assert not make_timers_precise(loop)
        assert type(_selector(loop)) is selectors.SelectSelector
    finally:
        loop.close()
    monkeypatch.setenv("FLOCK_ES_PRECISE_TIMERS", "0")
    loop = asyncio.new_event_loop()
    try:
        assert not make_timers_precise(loop)
        assert type(_selector(loop)) is not PreciseEpollSelector
    finally:
        loop.close()


@linux
async def test_a_run_makes_its_loop_precise(tmp_path: Path) -> None:
    seen: list[int] = []

    async def nap(p: Ping) -> None:
        await asyncio.sleep(0.005)
        seen.append(p.n)

    flock = Flock(db=tmp_path / "t.db")
    flock.agent("napper").consumes(Ping).with_function(nap)
    await flock.publish(Ping(n=1))
    assert type(_selector(asyncio.get_running_loop())) is PreciseEpollSelector
    await flock.run_until_idle()
    await flock.close()
    assert seen == [1]


@linux
def test_waits_shorter_than_the_spin_fire_only_when_due_and_see_io() -> None:
    """The last ``SPIN`` before a deadline the loop looks for I/O without waiting:
    timers still fire in order and only once due, and I/O ready meanwhile runs first."""

    async def main() -> list[tuple[str, bool]]:
        loop = asyncio.get_running_loop()
        assert make_timers_precise(loop)
        fired: list[tuple[str, bool]] = []
        r, w = os.pipe()
        loop.add_reader(r, lambda: fired.append(("io", bool(os.read(r, 10)))))
        for i in range(20):
            delay = SPIN * (0.2 + (i % 5) * 0.4)  # shorter and longer than the spin
            when = loop.time() + delay
            loop.call_at(when, functools.partial(_stamp, fired, loop, f"t{i}", when))
            if i == 10:
                os.write(w, b"x")
            await asyncio.sleep(delay * 1.5)
        loop.remove_reader(r)
        os.close(r)
        os.close(w)
        return fired

    fired = asyncio.run(main())
    assert fired[:11] == [(f"t{i}", True) for i in range(10)] + [("io", True)]
    assert fired[11:] == [(f"t{i}", True) for i in range(10, 20)]


@linux
def test_the_selector_calls_what_waits_for_its_next_select() -> None:
    """``loop_wait.at_next_select``: called once, before the next select, with the
    loop's timeout (0 while callbacks are ready); one that made callbacks ready
    keeps the loop from waiting."""
    from flock_es.loop_wait import at_next_select

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        assert make_timers_precise(loop)
        seen: list[object] = []

        def busy(timeout: float | None) -> bool:
            seen.append(("busy", timeout))
            return False

        woken: asyncio.Future[None] = loop.create_future()

        def idle(timeout: float | None) -> bool:
            seen.append(("idle", timeout is None or timeout > 0))
            woken.set_result(None)  # made ready: the loop must not wait (an hour)
            return True

        assert at_next_select(loop, busy)
        loop.call_soon(lambda: None)
        await asyncio.sleep(0)
        assert at_next_select(loop, idle)
        loop.call_later(3600, lambda: None)  # the only timer: an hour away
        await woken
        seen.append("ran")
        return seen

    assert asyncio.run(main()) == [("busy", 0), ("idle", True), "ran"]
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        from flock_es.loop_wait import at_next_select

        assert not at_next_select(loop, lambda t: False)
    finally:
        loop.close()
