"""The asyncio tasks of one run: agents at work and armed timers.

``run_until_idle`` waits for all of them; ``cancel_all`` stops them (a closing
or interrupted run). Every part that starts background work hands it here, so
nothing is left running unnoticed.

Example::

    work = Work()
    work.spawn(some_coroutine(), "flock-es:timer")
    await work.until_idle()
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Coroutine
from typing import Any

__all__ = ["Work"]


class Work:
    """A set of tracked asyncio tasks."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        # The first exception a task ended with (a failed commit stops the others too).
        self.failure: BaseException | None = None

    def __bool__(self) -> bool:
        return bool(self.tasks)

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        """Start ``coro`` as a tracked task (in ``context``, else a copy of the current one)."""
        task = asyncio.get_running_loop().create_task(coro, name=name, context=context)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here: no "Task exception was never retrieved"
        if exc is not None and self.failure is None:
            self.failure = exc

    async def until_idle(self, timeout: float | None = None) -> bool:
        """Return True when no tracked task is left, False once ``timeout`` seconds
        have passed with tasks still running; re-raise the first that failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.tasks and self.failure is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(set(self.tasks), timeout=left, return_when=asyncio.FIRST_EXCEPTION)
        if self.failure is not None:
            raise self.failure
        return True

    async def cancel_all(self) -> None:
        """Cancel every tracked task and wait until they are gone."""
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks))
