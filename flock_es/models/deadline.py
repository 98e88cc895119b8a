"""``within(delay, awaitable)``: ``asyncio.timeout`` for many awaits of one length.

Every model-call attempt is bounded (``RetryPolicy.timeout``, two minutes by
default) and almost none runs out. ``asyncio.timeout`` arms a loop timer per
attempt and cancels it after: a Python heap push and a cancelled handle left
in the loop's heap per call (its comparisons are Python calls too), with a
context manager's two coroutines around it, about 8 µs per call on the path
before and after it (200 agents calling at once: issue 14 (e)).

Attempts of the same length started one after another end their bounds in
the order they started, so one queue per loop and length, and one loop timer
armed for its oldest bound, serve them all: starting an attempt appends to
the queue, finishing one marks it done, and the timer, when it fires, cancels
the tasks whose bound passed (``TimeoutError``, exactly as ``asyncio.timeout``
raises it, the cancellation counted the same way) and re-arms itself for the
oldest bound still open.

Example::

    answer = await within(120.0, client.complete(request))   # TimeoutError after 120 s
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["within"]

T = TypeVar("T")


class _Bound:
    """One await's bound: its task, when it runs out, and how it ended."""

    __slots__ = ("cancelling", "done", "expired", "task", "when")

    def __init__(self, task: asyncio.Task[object], when: float) -> None:
        self.task = task
        self.when = when
        self.cancelling = task.cancelling()
        self.done = False
        self.expired = False


class _Bounds:
    """The open bounds of one length on one loop, oldest first, and whether their one
    timer is armed. Holds neither the loop nor the timer's handle (the loop holds
    it): the table of bounds, keyed weakly by loop, must not keep a loop alive."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.queue: deque[_Bound] = deque()
        self.armed = False
        self.armed_for = 0.0

    def open(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object]) -> _Bound:
        bound = _Bound(task, loop.time() + self.delay)
        self.queue.append(bound)
        if not self.armed:
            self._arm(loop, bound.when)
        return bound

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self.armed = True
        self.armed_for = when
        loop.call_at(when, self._fire)

    def close(self, bound: _Bound) -> None:
        bound.done = True
        queue = self.queue
        while queue and queue[0].done:  # usually this one: bounds end in order
            queue.popleft()

    def _fire(self) -> None:
        self.armed = False
        loop = asyncio.get_running_loop()
        queue = self.queue
        # The loop runs a timer up to its clock's resolution early: what it was armed
        # for has run out, whatever the clock says.
        now = max(loop.time(), self.armed_for)
        while queue and (queue[0].done or queue[0].when <= now):
            bound = queue.popleft()
            if not bound.done:
                bound.expired = True
                bound.task.cancel()
        if queue:
            self._arm(loop, queue[0].when)


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Bounds]] = (
    weakref.WeakKeyDictionary()
)


async def within(delay: float, aw: Awaitable[T]) -> T:
    """``await aw``, raising ``TimeoutError`` if it takes more than ``delay`` seconds
    (``async with asyncio.timeout(delay): await aw``, cheaper for many awaits)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    assert task is not None, "within() runs inside a task"
    try:
        by_delay = _BY_LOOP.get(loop)
    except TypeError:  # a loop that cannot be weakly referenced: asyncio's own bound
        async with asyncio.timeout(delay):
            return await aw
    if by_delay is None:
        by_delay = _BY_LOOP[loop] = {}
    bounds = by_delay.get(delay)
    if bounds is None:
        bounds = by_delay[delay] = _Bounds(delay)
    bound = bounds.open(loop, task)
    try:
        result = await aw
    except asyncio.CancelledError as exc:
        bounds.close(bound)
        # asyncio.timeout's rule: a TimeoutError only if no one else cancelled too.
        if bound.expired and task.uncancel() <= bound.cancelling:
            raise TimeoutError from exc
        raise
    except BaseException:
        bounds.close(bound)
        if bound.expired:
            task.uncancel()
        raise
    bounds.close(bound)
    if bound.expired:  # it ended just as its bound ran out: the answer stands
        task.uncancel()
    return result
