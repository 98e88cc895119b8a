"""Group commit, shared by the SQLite and the PostgreSQL writer: callers queue
atomic units (``UnitQueue``: ``submit``, ``enqueue``, ``append``); a drain
commits whatever is queued in one transaction and tells every waiter how it
went. Only the commit itself is the backend's.

This module holds what both writers share: the unit, the callers' queue and
the asyncio drain (``drain``; PostgreSQL's async driver). SQLite's blocking
driver is drained by a thread of its own instead, which decides when the loop
commits held units itself: ``log/thread_drain.py``.

Example::

    class MyWriter(UnitQueue):
        def closed_error(self) -> Exception: return RuntimeError("closed")
    await drain(writer._queue, 512, commit_one_group, lambda exc: exc)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from flock_es.domain.events import Event
from flock_es.log.event_stream import EventStream, drain_stream, split_streams

__all__ = [
    "Unit",
    "UnitQueue",
    "drain",
    "next_batch",
    "poisoned",
    "settle",
]


# One atomic unit of the group commit: its events and who waits for them (if anyone).
Unit = tuple[list[Event], asyncio.Future[None] | None]


async def next_batch(queue: asyncio.Queue[Unit | None], max_batch: int) -> tuple[list[Unit], bool]:
    """The units of the next group commit (up to ``max_batch`` events), and whether to stop.

    Waits for the first unit; takes whatever else is already queued. ``None`` in
    the queue asks the drain to stop after what came before it. Shared by the
    SQLite and PostgreSQL writers.

    Example: ``units, stop = await next_batch(queue, 512)``.
    """
    item = await queue.get()
    if item is None:
        return [], True
    units = [item]
    size = len(item[0])
    while size < max_batch and not queue.empty():
        nxt = queue.get_nowait()
        if nxt is None:
            return units, True
        units.append(nxt)
        size += len(nxt[0])
    return units, False


def settle(units: list[Unit], exc: BaseException | None) -> None:
    """Tell every waiter of ``units`` how their commit went (``exc`` None: it is durable).

    Example: ``settle(units, None)`` after the commit, ``settle(units, error)`` if it failed.
    """
    for _, fut in units:
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)


async def drain(
    queue: asyncio.Queue[Unit | None],
    max_batch: int,
    commit: Callable[[list[Event]], Awaitable[None]],
    as_error: Callable[[BaseException], BaseException],
    commit_stream: Callable[[EventStream], Awaitable[tuple[int, int]]] | None = None,
) -> None:
    """Group-commit the queued units until ``None`` arrives; every waiter hears the outcome.

    The loop of both the SQLite and the PostgreSQL writer: ``commit`` writes one
    group in one transaction, ``as_error`` turns its failure into what waiters see;
    ``commit_stream`` writes an ``EventStream`` in a transaction of its own.

    After a failed commit it commits nothing more: every later unit gets that
    failure (``poisoned``). A stream its producer gave up on (``StreamAborted``) is
    not a failed commit: nothing of it was decided on.

    Example: ``await drain(queue, 512, self._commit, lambda exc: exc)``.
    """
    failed: BaseException | None = None
    while True:
        units, stop = await next_batch(queue, max_batch)
        for stream, group in split_streams(units):
            if failed is not None:
                poisoned(stream, group, failed)
                continue
            if stream is not None:
                failed = await drain_stream(stream, commit_stream, as_error)
                continue
            try:
                await commit([e for evs, _ in group for e in evs])
            except BaseException as exc:  # the waiters must hear about it
                failed = as_error(exc)
                settle(group, failed)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                settle(group, None)
        if stop:
            return


def poisoned(stream: EventStream | None, group: list[Unit], failed: BaseException) -> None:
    """Settle units queued after a failed commit with its failure, writing none of them.

    The units a run queues were decided on a state that holds every unit before them:
    a unit after a failed one may name what only the failed one held (a batch that
    takes an artifact whose publish was lost), and committed, it would put in the log
    a task whose inputs are not there. So nothing commits after a failure; a resume
    decides again from the log (a full disk let a later, smaller commit through). The
    exception: a stream its producer gave up on (a publish whose source failed), which
    the kernel decides nothing on until it commits.
    """
    if stream is not None:
        stream.settle(0, 0, failed)
    settle(group, failed)


class UnitQueue:
    """The callers' side of a group-commit writer; the subclass starts the drain task
    (``self._task``) over ``self._queue`` and says what a closed writer raises."""

    _queue: asyncio.Queue[Unit | None]
    _task: asyncio.Future[None] | None

    def closed_error(self) -> Exception:
        """What a unit queued after the writer closed gets."""
        raise NotImplementedError

    def _accepting(self) -> bool:
        return self._task is not None and not self._task.done()

    def _put(self, unit: Unit | None) -> None:
        self._queue.put_nowait(unit)

    def submit(self, events: list[Event]) -> asyncio.Future[None]:
        """Queue one atomic unit; the future resolves after its commit."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._accepting():
            fut.set_exception(self.closed_error())
            return fut
        self._put((events, fut))
        return fut

    def enqueue(self, events: list[Event]) -> None:
        """Queue one atomic unit without waiting for it; order with later units is kept."""
        if not self._accepting():
            raise self.closed_error()
        self._put((events, None))

    async def append(self, events: list[Event]) -> None:
        """Commit ``events`` as one unit; returns after the commit."""
        await self.submit(events)

    def submit_stream(self, stream: EventStream) -> None:
        """Queue a unit that comes a chunk at a time (``log/event_stream.py``), after
        the units queued before it; its outcome is ``stream.done``."""
        if not self._accepting():
            stream.settle(0, 0, self.closed_error())
            return
        self._put((stream, None))

    async def stop_drain(self) -> None:
        """Commit what is queued, then stop the drain."""
        if self._accepting():
            self._put(None)
            assert self._task is not None
            with contextlib.suppress(Exception):
                await self._task
