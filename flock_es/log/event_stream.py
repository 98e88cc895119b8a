"""One atomic unit that reaches the writer a chunk at a time: a large publish_many.

A publish of 100,000 artifacts is one transaction (all of them are durable, or
none), but built whole (its events, their rows and JSON) it was most of a
run's peak memory (issue 14). An ``EventStream`` is queued like any unit
(``UnitQueue.submit_stream``), after the units queued before it; when the
writer reaches it, it opens the transaction and writes each chunk as the
producer hands it over (``put``), at most ``AHEAD`` chunks ahead of the
writer, and commits at ``end``. ``abort`` (or an error writing) rolls the
whole unit back. Units queued after it commit after it.

The producer runs on the event loop; the SQLite writer takes the chunks in its
thread (``take``), the PostgreSQL writer on the loop (``take_async``).

Example::

    stream = EventStream()
    writer.submit_stream(stream)
    try:
        for chunk in chunks:
            await stream.put(chunk)
        stream.end()
    except BaseException as exc:
        stream.abort(exc)
        raise
    first, last = await stream.done
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from flock_es.domain.events import Event

if TYPE_CHECKING:
    from flock_es.log.ports import EventWriter

__all__ = [
    "AHEAD",
    "EventStream",
    "StreamAborted",
    "append_streamed",
    "drain_stream",
    "split_streams",
]

# A group-commit unit: its events (or a stream) and who waits for them.
_U = TypeVar("_U", bound=tuple[list[Event], Any])

AHEAD = 2
"""Chunks a producer may hand over before the writer has written them."""


class StreamAborted(Exception):
    """The producer gave up (``abort``): the writer rolls the unit back."""


_END = object()


class EventStream(list[Event]):
    """A unit of chunks (see the module docstring); ``done`` resolves to the seqs of its
    first and last events once committed, or to the error that rolled it back.

    It is queued where a unit's list of events goes, and is always empty as a list:
    a writer tells it apart by its type (``split_streams``), never by its contents.
    """

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[object] = deque()
        self._ready = threading.Condition()
        self._arrived = asyncio.Event()  # for a writer on the loop (take_async)
        self._room = asyncio.Semaphore(AHEAD)
        self.done: asyncio.Future[tuple[int, int]] = self._loop.create_future()

    # --- the producer (on the loop) -------------------------------------------

    async def put(self, events: list[Event]) -> None:
        """Hand over one chunk; waits while ``AHEAD`` chunks are not yet written."""
        await self._room.acquire()
        if self.done.done():  # the writer failed already: stop producing
            self._room.release()
            self.done.result()  # raises the writer's error
        self._push(events)

    def end(self) -> None:
        """No more chunks: the writer commits the unit."""
        self._push(_END)

    def abort(self, exc: BaseException) -> None:
        """The unit must not commit: the writer rolls back what it wrote."""
        self._push(StreamAborted(f"the publish was abandoned: {exc!r}"))

    def _push(self, item: object) -> None:
        with self._ready:
            self._chunks.append(item)
            self._ready.notify()
        self._arrived.set()

    # --- the writer -------------------------------------------------------------

    def take(self) -> list[Event] | None:
        """The next chunk, waiting for it (in the writer's thread); None at the end.
        Raises ``StreamAborted`` if the producer gave up."""
        with self._ready:
            while not self._chunks:
                self._ready.wait()
            item = self._chunks.popleft()
        return self._item(item)

    async def take_async(self) -> list[Event] | None:
        """``take`` for a writer on the event loop."""
        while True:
            with self._ready:
                if self._chunks:
                    item = self._chunks.popleft()
                    break
                self._arrived.clear()
            await self._arrived.wait()
        return self._item(item)

    def _item(self, item: object) -> list[Event] | None:
        if item is _END:
            return None
        if isinstance(item, StreamAborted):
            raise item
        assert isinstance(item, list)
        return item

    def written(self) -> None:
        """A chunk is written: the producer may hand over another (from any thread)."""
        self._call(self._room.release)

    def settle(self, first: int, last: int, exc: BaseException | None) -> None:
        """The unit committed (seqs ``first`` to ``last``), or ``exc`` rolled it back."""
        self._call(self._settle, first, last, exc)

    def _settle(self, first: int, last: int, exc: BaseException | None) -> None:
        if self.done.done():
            return
        if exc is None:
            self.done.set_result((first, last))
        else:
            self.done.set_exception(exc)
            self._room.release()  # a producer waiting for room hears of it

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        if self._on_loop():
            fn(*args)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False


def split_streams(units: list[_U]) -> Iterator[tuple[EventStream | None, list[_U]]]:
    """``units`` in commit order: runs of plain units (one transaction each, ``None``)
    and each ``EventStream`` alone (``log/event_stream.py``: a transaction of its own)."""
    run: list[_U] = []
    for unit in units:
        if isinstance(unit[0], EventStream):
            if run:
                yield None, run
                run = []
            yield unit[0], [unit]
        else:
            run.append(unit)
    if run:
        yield None, run


async def drain_stream(
    stream: EventStream,
    commit_stream: Callable[[EventStream], Awaitable[tuple[int, int]]] | None,
    as_error: Callable[[BaseException], BaseException],
) -> BaseException | None:
    """Commit ``stream`` with ``commit_stream`` (a writer on the loop) and settle it; the
    failure its producer heard, if the commit failed (not if the producer gave up:
    ``StreamAborted`` loses its unit only, ``group_commit.poisoned``)."""
    try:
        if commit_stream is None:
            raise RuntimeError("this writer cannot commit a stream of events")
        first, last = await commit_stream(stream)
    except BaseException as exc:  # the producer must hear about it
        failed = as_error(exc)
        stream.settle(0, 0, failed)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return None if isinstance(exc, StreamAborted) else failed
    stream.settle(first, last, None)
    return None


async def append_streamed(writer: EventWriter, events: Iterator[Event], chunk: int) -> None:
    """``events`` committed by ``writer`` in one transaction, handed over ``chunk`` at a
    time where the writer takes a stream (``submit_stream``), so they are never held
    whole (an import, a fork's copy of its parent); else appended as one unit."""
    submit: Callable[[EventStream], None] | None = getattr(writer, "submit_stream", None)
    if submit is None:
        await writer.append(list(events))
        return
    stream = EventStream()
    submit(stream)
    try:
        while part := list(itertools.islice(events, chunk)):
            await stream.put(part)
        stream.end()
    except BaseException as exc:
        stream.abort(exc)
        await asyncio.wait([stream.done])  # rolled back; its outcome is this error's
        if not stream.done.cancelled():
            stream.done.exception()
        raise
    await stream.done
