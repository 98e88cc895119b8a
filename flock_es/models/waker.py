"""Sleep until a moment, woken on time: the offline model's simulated latency.

``asyncio.sleep`` on Linux wakes up to a millisecond late: the selector's
``epoll_wait`` takes its timeout in whole milliseconds, rounded up, counted
from whenever the loop last went idle. A real model's answer arrives on a
socket and wakes the loop at once, so a simulated latency that oversleeps
adds what no real call would (half a millisecond per call on average, at each
level of a chain of agents). Here one thread keeps the deadlines and wakes the
waiting loop through ``call_soon_threadsafe`` when one is due, which is
precise to the thread's wake-up (tens of microseconds). A loop whose timers
are precise already (``precise_timers``: a run's own loop) just sleeps: the
thread's wake-ups took the GIL from the loop while it started the next calls.
Its sleepers share one loop timer (``_Sleepers``), armed for the earliest of
their deadlines, which wakes every sleeper due when it fires.

Example::

    await sleep_precisely(0.05)   # resumes 50 ms later, not up to 51
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import os
import threading
import time
import weakref

from flock_es.models.precise_timers import timers_are_precise

__all__ = ["sleep_precisely"]

_Entry = tuple[float, int, asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():  # cancelled meanwhile
        fut.set_result(None)


class _Waker:
    """One daemon thread that wakes each sleeper's loop at its deadline."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.heap: list[_Entry] = []
        self.order = itertools.count()
        self.thread: threading.Thread | None = None

    def add(self, due: float, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
        with self.cond:
            heapq.heappush(self.heap, (due, next(self.order), loop, fut))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="flock-es-waker", daemon=True)
                self.thread.start()
            if self.heap[0][3] is fut:  # a new earliest deadline: wait for that one instead
                self.cond.notify()

    def _run(self) -> None:
        with self.cond:
            while True:
                if not self.heap:
                    self.cond.wait()
                    continue
                left = self.heap[0][0] - time.monotonic()
                if left > 0:
                    self.cond.wait(left)
                    continue
                _, _, loop, fut = heapq.heappop(self.heap)
                # A loop that closed meanwhile has no one waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_wake, fut)


_WAKER = _Waker()


def _after_fork() -> None:
    # A forked child has no waker thread (only the forking thread survives a fork).
    global _WAKER
    _WAKER = _Waker()


os.register_at_fork(after_in_child=_after_fork)


class _Sleepers:
    """The precise sleeps of one loop, by deadline, and the one loop timer that
    wakes them: armed for the earliest deadline, it wakes every sleeper due and
    re-arms for the next. A loop timer per sleep put 200 ``TimerHandle``s in the
    loop's heap at once (a wide run's calls: issue 14 (e)), each push and pop
    comparing them with their Python ``__lt__``; these entries are tuples, compared
    in C, and a burst of answers due together is one timer callback. Holds the
    futures only: the loop holds the timer."""

    __slots__ = ("armed_for", "heap", "order", "timer")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self.order = itertools.count()  # equal deadlines wake in the order they slept
        self.timer: asyncio.TimerHandle | None = None
        self.armed_for = math.inf

    def add(self, loop: asyncio.AbstractEventLoop, due: float, fut: asyncio.Future[None]) -> None:
        heapq.heappush(self.heap, (due, next(self.order), fut))
        if due < self.armed_for:  # a new earliest deadline (usually the first sleeper)
            if self.timer is not None:
                self.timer.cancel()
            self.armed_for = due
            self.timer = loop.call_at(due, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        heap = self.heap
        # The loop runs a timer up to its clock's resolution early: what it was armed
        # for is due, whatever the clock says.
        now = max(loop.time(), self.armed_for)
        self.timer = None
        self.armed_for = math.inf
        while heap and heap[0][0] <= now:
            fut = heapq.heappop(heap)[2]
            if not fut.done():  # cancelled meanwhile
                fut.set_result(None)
        if heap:
            due = heap[0][0]
            self.armed_for = due
            self.timer = loop.call_at(due, self._fire, loop)


# The sleepers of each precise loop; weakly keyed, so a closed loop is not kept alive.
_SLEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sleepers] = (
    weakref.WeakKeyDictionary()
)


async def sleep_precisely(delay: float) -> None:
    """``asyncio.sleep(delay)``, resumed at the deadline rather than up to 1 ms after.

    ``delay <= 0`` just yields once, as ``asyncio.sleep(0)`` does.
    """
    if delay <= 0:
        await asyncio.sleep(0)
        return
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    if timers_are_precise(loop):  # the loop's own timer is on time: no thread needed
        # Not asyncio.sleep: it cancels its timer once it ran, which the loop counted as
        # a cancelled timer in its heap, and 200 of them (a wide run's answers) made it
        # rebuild its heap of the other calls' timers. A cancelled sleeper's entry stays
        # until its deadline, and is skipped then.
        sleepers = _SLEEPERS.get(loop)
        if sleepers is None:
            sleepers = _SLEEPERS[loop] = _Sleepers()
        sleepers.add(loop, loop.time() + delay, fut)
        await fut
        return
    _WAKER.add(time.monotonic() + delay, loop, fut)
    await fut
