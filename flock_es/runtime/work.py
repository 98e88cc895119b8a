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
from typing import Any, cast

from flock_es.runtime.eager import Suspended, step

__all__ = ["Work"]


async def _finish(rest: Suspended[Any]) -> Any:
    """The rest of a coroutine ``Work.spawn_eager`` stepped, as a task."""
    return await rest


class Work:
    """A set of tracked asyncio tasks."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        # The first exception a task ended with (a failed commit stops the others too).
        self.failure: BaseException | None = None
        # Set by the task that leaves none behind (or fails) while ``until_idle`` waits:
        # a future per waiter, not a callback on every task (``asyncio.wait``'s, a second
        # call per finished task, and a pass over all of them per wait). Each waiter
        # awaits its own, so one cancelled leaves the others waiting, and one without a
        # timeout awaits it directly: through ``asyncio.wait`` it took two more loop
        # iterations to hear, on the path from a run's last commit to its caller (issue 14).
        self._idle: list[asyncio.Future[None]] = []

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

    def spawn_eager(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """``spawn``, but ``coro`` runs up to its first suspension at once (``eager.step``),
        and gets a task only if it suspends; an error it ends with on that step is
        the run's failure, as a task's would be.

        For work that should start before what the loop already has ready: the
        engine starts a committed unit's function agents from the commit's callback
        so, ahead of the callers of that commit resuming (issue 14 (a)).
        """
        try:
            done, value, ctx = step(coro)
        except Exception as exc:
            self._failed(exc)
            return
        if not done:
            rest = cast("Suspended[Any]", value)
            self.spawn(_finish(rest), name, ctx)

    def _failed(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        self._wake()

    def spawn_ending(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[Any]:
        """``spawn`` for a coroutine that reports its own end, as its last act: ``ended``
        once it returns, ``raising`` as it raises. No done callback: a loop callback
        (a handle, a call and ``_done``'s) per task less, one per agent run (issue 14
        (e)). A task cancelled before it first runs never reports: only ``cancel_all``
        cancels these (the engine keeps no handle), and it forgets those."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        return task

    def ended(self) -> None:
        """The current task, of ``spawn_ending``, returns (its last act): ``_done`` for it."""
        self._forget(_current())

    def raising(self) -> None:
        """The current task, of ``spawn_ending``, raises: ``_done`` hears of it once it
        has ended (and retrieves its exception, the first one failing the run)."""
        _current().add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled():
            exc = task.exception()  # retrieved here: no "Task exception was never retrieved"
            if exc is not None and self.failure is None:
                self.failure = exc
        self._forget(task)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        """``task`` has ended: waiters hear once none is left, or one failed."""
        self.tasks.discard(task)
        if self._idle and (not self.tasks or self.failure is not None):
            self._wake()

    def _wake(self) -> None:
        """Tell every ``until_idle`` waiter to look again."""
        waiters, self._idle = self._idle, []
        for idle in waiters:
            if not idle.done():
                idle.set_result(None)

    async def until_idle(self, timeout: float | None = None) -> bool:
        """Return True when no tracked task is left, False once ``timeout`` seconds
        have passed with tasks still running; re-raise the first that failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.tasks and self.failure is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            try:
                if left is None:
                    await idle
                else:
                    await asyncio.wait((idle,), timeout=left)
            finally:
                if idle in self._idle:  # timed out or cancelled: no longer a waiter
                    self._idle.remove(idle)
                    idle.cancel()
        if self.failure is not None:
            raise self.failure
        return True

    async def cancel_all(self) -> None:
        """Cancel every tracked task and wait until they are gone."""
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks))
        for t in [t for t in self.tasks if t.done()]:  # a spawn_ending task that never ran
            self._done(t)


def _current() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None, "called from a task's own coroutine"
    return task
