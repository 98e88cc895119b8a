"""Step a coroutine at once; only if it suspends does it need a task of its own.

Most agent runs never wait for anything (a ``def`` agent, or an ``async def``
one that computes and returns), so creating an asyncio task per run, and
waking it once more for its commit, costs more than the run itself. ``step``
runs a coroutine up to its first suspension right away, as Python 3.12's
eager tasks do: if it finished, its result is there; if it suspended,
``Suspended`` is the rest of it, which an asyncio task awaits like the
coroutine itself (the future it suspended on is handed on unchanged).

Each stepped coroutine gets its own ``contextvars`` context, as a task would;
the task that finishes a suspended one must run in that same context.

Example::

    done, value, ctx = step(agent_run())
    if not done:
        asyncio.get_running_loop().create_task(finish(value), context=ctx)
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Suspended", "step"]

T = TypeVar("T")


class Suspended(Generic[T]):
    """The rest of a coroutine that suspended on its first step; await it once."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, T], pending: Any) -> None:
        self.coro = coro
        self.pending = pending  # what the coroutine yielded to its event loop

    def __await__(self) -> Generator[Any, Any, T]:
        coro, value = self.coro, self.pending
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like go on to the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]


def step(
    coro: Coroutine[Any, Any, T],
) -> tuple[bool, T | Suspended[T], contextvars.Context]:
    """Run ``coro`` to its first suspension: ``(True, result, ctx)`` if it finished,
    else ``(False, Suspended, ctx)``; ``ctx`` is the context it ran in.

    An exception the coroutine raises on this first step propagates.
    """
    ctx = contextvars.copy_context()
    try:
        pending = ctx.run(coro.send, None)
    except StopIteration as stop:
        return True, stop.value, ctx
    return False, Suspended(coro, pending), ctx
