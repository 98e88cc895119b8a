"""A large publish_many, streamed: one transaction, never held whole.

More than ``engine.DEFER_AT`` artifacts are committed at once, flagged
``deferred``, and decided later (docs/subscriptions.md). Built whole, such a
publish held every event, row and JSON body of 100,000 artifacts at once:
most of a run's peak memory (issue 14). Here its events are built a chunk of
``STREAM_CHUNK`` at a time and handed to the writer's open transaction
(``log/event_stream.py``), which commits them all or none.

Nothing of the publish reaches the state before its commit: once it is
durable, its events are read back from the log a chunk at a time and folded
(``Kernel.apply``), then given to the listeners and the actor as any
committed unit is (``Kernel.committed``). So an error halfway (an object that
does not serialise, a full disk, a lost lease) leaves the log and the state
as they were, and the caller gets the error; a process killed halfway leaves
an uncommitted transaction, which no reader ever sees.

Example::

    ids = await publish_deferred(kernel, objs, build)  # build(obj) -> its event
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable

from pydantic import BaseModel

from flock_es.domain.events import ArtifactPublished, Event, body_as
from flock_es.log.event_stream import EventStream
from flock_es.log.queries import BoardQueries
from flock_es.runtime.kernel import Kernel

__all__ = ["STREAM_CHUNK", "publish_deferred"]

STREAM_CHUNK = 1024
"""Artifacts built, written, and later read back and folded, at a time."""


async def publish_deferred(
    kernel: Kernel, objs: Iterable[BaseModel], build: Callable[[BaseModel], Event]
) -> list[str]:
    """Commit ``build(obj)`` for every object in one transaction; their ids once durable.

    Streamed when the sink can (``submit_stream``: the SQLite and PostgreSQL
    writers) and the state is compact (a full state holds every view anyway);
    otherwise one unit, applied then committed, as any other.
    """
    submit: Callable[[EventStream], None] | None = getattr(kernel.sink, "submit_stream", None)
    board = kernel.artifacts.board
    if submit is None or board is None or not kernel.state.compact:
        evs = [build(obj) for obj in objs]
        await kernel.emit(evs)  # all or none; the fold holds them as undecided
        return [body_as(e, ArtifactPublished)["id"] for e in evs]
    kernel.check()
    stream = EventStream()
    submit(stream)
    ids: list[str] = []
    source = iter(objs)  # a program's generator is read as the publish streams
    try:
        while chunk := [build(obj) for obj in itertools.islice(source, STREAM_CHUNK)]:
            ids.extend(body_as(e, ArtifactPublished)["id"] for e in chunk)
            await stream.put(chunk)
            del chunk  # the writer holds it until written, then nobody does
        stream.end()
    except BaseException as exc:
        stream.abort(exc)
        # The writer rolls back; its outcome is this error's consequence, not news
        # (retrieved, so asyncio does not log it as an exception nobody retrieved).
        await asyncio.wait([stream.done])
        if not stream.done.cancelled():
            stream.done.exception()
        raise
    first, last = await stream.done
    await _fold_committed(kernel, board.queries(), first, last)
    return ids


async def _fold_committed(
    kernel: Kernel, board: BoardQueries | None, first: int, last: int
) -> None:
    """Fold the committed stream into the state, read back from the log a chunk at a
    time; each chunk then goes to the listeners and the actor (``Kernel.committed``)."""
    if board is None or last < first:
        return
    state, reader, cursor = kernel.state, board.reader, first - 1
    # Each chunk read whole: no cursor stays open across the awaits below (on SQLite
    # an open statement would hold this connection's other reads to its snapshot).
    while chunk := list(reader.iter_events(kernel.run_id, cursor, last, STREAM_CHUNK)):
        cursor = chunk[-1].seq or last
        # Units committed after the stream may have been folded already (they were
        # applied before their commit): the state's last seq stays the highest.
        ahead = state.last_seq
        kernel.apply(chunk)
        state.last_seq = max(ahead, state.last_seq)
        kernel.committed(chunk)
        await asyncio.sleep(0)  # the loop's timers and other tasks run meanwhile
