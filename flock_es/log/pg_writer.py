"""The PostgreSQL writer: one connection, group commit, appends serialised.

Same contract as the SQLite ``LogWriter``: concurrent ``append`` units are
committed together in one transaction, a unit is never split, and ``append``
returns only after the commit. Each transaction takes the append lock (see
``pg_schema``), so seqs are gap-free and become visible in order across any
number of writer processes, and it sends a NOTIFY that readers wake up on.

Example::

    writer = await PgLogWriter.open("postgresql://postgres@127.0.0.1:5432/test")
    await writer.append([event])
    await writer.close()
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from flock_es.domain.events import Event, EventKind
from flock_es.errors import DatabaseError, RunOwnedError
from flock_es.log.event_rows import PAID_KINDS, event_text, read_model_rows
from flock_es.log.event_stream import EventStream
from flock_es.log.group_commit import Unit, UnitQueue, drain
from flock_es.log.pg_rows import insert_events_json, insert_rows
from flock_es.log.pg_schema import (
    APPEND_LOCK,
    NOTIFY_CHANNEL,
    describe_url,
    first_line,
    migrate,
    pg_connect,
)
from flock_es.log.ports import Durability, Lease
from flock_es.log.query_models import POSTGRES, READ_MODEL_TABLES, query_model_rows, statements
from flock_es.log.run_counters import PG_RESET, PG_TOUCH_RUN

__all__ = ["PgLogWriter", "insert_events", "read_model_sql", "rebuild_on"]

_INSERT_ARTIFACT = (
    "INSERT INTO artifacts(seq, id, run_id, type, produced_by, ts, task_id, "
    "correlation_id, vis_kind, visibility) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
    "ON CONFLICT DO NOTHING"
)
_INSERT_RUN = (
    "INSERT INTO runs(run_id, program, model, started_at, status, parent_run, fork_seq, "
    "first_seq, last_seq, events) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,0) "
    "ON CONFLICT (run_id) DO UPDATE SET program=excluded.program, model=excluded.model, "
    "started_at=excluded.started_at, status=excluded.status, parent_run=excluded.parent_run, "
    "fork_seq=excluded.fork_seq, first_seq=excluded.first_seq, last_seq=excluded.last_seq, "
    f"events=0, finished_at=NULL, {PG_RESET}"
)
_FINISH_RUN = "UPDATE runs SET finished_at=%s, status=%s WHERE run_id=%s"
_PROCESS_RUN = "UPDATE runs SET pid=%s, host=%s WHERE run_id=%s"

AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]


def read_model_sql(events: list[Event]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The statements (with their rows) that keep the read models in step with ``events``."""
    rows = read_model_rows(events)
    pairs = (
        (_INSERT_RUN, rows.runs),
        (_INSERT_ARTIFACT, rows.arts),
        (_FINISH_RUN, rows.finished),
        (_PROCESS_RUN, rows.procs),
        (PG_TOUCH_RUN, rows.touch),
    )
    out = [(sql, args) for sql, args in pairs if args]
    return out + statements(query_model_rows(events), POSTGRES)


def rebuild_on(con: psycopg.Connection[tuple[Any, ...]], chunk: int = 10_000) -> int:
    """Empty and re-derive every read model from the events, in the caller's transaction
    (``PostgresStore.rebuild_read_models`` and the schema upgrade use it)."""
    from flock_es.log.reader import row_to_event

    con.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # no append meanwhile
    for table in READ_MODEL_TABLES:
        con.execute(f"DELETE FROM {table}")
    cursor, total = 0, 0
    while True:
        rows = con.execute(
            "SELECT seq, run_id, kind, ts, v, body::text FROM events "
            "WHERE seq > %s ORDER BY seq LIMIT %s",
            (cursor, chunk),
        ).fetchall()
        if not rows:
            return total
        events = [e for e in (row_to_event(r) for r in rows) if e is not None]
        with con.cursor() as cur:
            for sql, args in read_model_sql(events):
                cur.executemany(sql, args)
        cursor = rows[-1][0]
        total += len(rows)


async def insert_events(conn: AsyncConn, events: list[Event]) -> None:
    """Number and insert ``events`` with their read-model rows, inside the caller's
    transaction. Takes the append lock first; sets ``seq`` on each event."""
    async with conn.cursor() as cur:
        last = await _last_seq(cur)
        seq = await _insert(cur, events, last)
        await _notify(cur, last + 1, seq)


async def insert_stream(conn: AsyncConn, stream: EventStream) -> tuple[int, int]:
    """``insert_events`` for an ``EventStream``: each chunk as it comes, in the
    caller's transaction; the seqs of its first and last events."""
    async with conn.cursor() as cur:
        seq = first = await _last_seq(cur)
        while (chunk := await stream.take_async()) is not None:
            seq = await _insert(cur, chunk, seq)
            stream.written()
        await _notify(cur, first + 1, seq)
    return first + 1, seq


async def _last_seq(cur: psycopg.AsyncCursor[tuple[Any, ...]]) -> int:
    """Take the append lock; the last seq."""
    await cur.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
    await cur.execute("SELECT coalesce(max(seq), 0) FROM events")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _insert(cur: psycopg.AsyncCursor[tuple[Any, ...]], events: list[Event], seq: int) -> int:
    """Insert ``events`` after ``seq`` with their read-model rows; the last seq."""
    rows = []
    bodies = []
    for e in events:
        seq += 1
        e.seq = seq
        text = event_text(e)
        if e.kind is EventKind.ARTIFACT_PUBLISHED:
            e.size = len(text)  # what its view weighs (``Kernel.committed``)
        rows.append((seq, e.run_id, e.kind.value, e.ts, e.v, e.task_id))
        bodies.append(text)
    await insert_events_json(cur, rows, bodies)
    for sql, args in read_model_sql(events):
        await insert_rows(cur, sql, args)
    return seq


async def _notify(cur: psycopg.AsyncCursor[tuple[Any, ...]], first: int, last: int) -> None:
    # Delivered at commit, to every LISTENing reader; the payload is the range.
    await cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, f"{first}-{last}"))


class PgLogWriter(UnitQueue):
    """Appends events to the PostgreSQL log with group commit.

    Example::

        writer = await PgLogWriter.open("postgresql://postgres@127.0.0.1:5432/test")
        await writer.append([event])
        await writer.close()
    """

    def __init__(
        self, url: str, max_batch: int = 4096, durability: Durability = Durability.FULL
    ) -> None:
        self.url = url
        self.durability = Durability(durability)
        self.fence: Lease | None = None
        self.path = describe_url(url)
        self.max_batch = max_batch
        self._conn: AsyncConn | None = None
        self._queue: asyncio.Queue[Unit | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.committed_events = 0

    @classmethod
    async def open(
        cls,
        url: str,
        max_batch: int = 4096,
        durability: Durability = Durability.FULL,
        fence: Lease | None = None,
    ) -> PgLogWriter:
        """Connect, create or upgrade the schema (one transaction), start the writer.

        With ``fence``, every commit first checks in its transaction that the
        lease is still held, and commits nothing (``RunOwnedError``) once it is not.
        """
        self = cls(url, max_batch, durability)
        self.fence = fence
        await asyncio.to_thread(_migrate_sync, url)
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=10
            )
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to {self.path}: {first_line(exc)}") from None
        if self.durability is Durability.NORMAL:
            # Commits survive a crash of this process (the server has them) but not
            # necessarily of the server's machine; paid results still wait for the flush.
            await self._conn.execute("SET synchronous_commit TO off")
        self._task = asyncio.create_task(self._drain(), name="flock-es-pg-writer")
        return self

    def closed_error(self) -> Exception:
        return DatabaseError(f"the log writer for {self.path} is closed")

    async def _drain(self) -> None:
        path = self.path
        await drain(
            self._queue,
            self.max_batch,
            self._commit,
            lambda e: _as_database_error(e, path),
            self._commit_stream,
        )

    async def _commit_stream(self, stream: EventStream) -> tuple[int, int]:
        assert self._conn is not None
        async with self._conn.transaction():
            if self.fence is not None:
                await self._check_fence(self.fence)
            seqs = await insert_stream(self._conn, stream)
        self.commits += 1
        self.committed_events += seqs[1] - seqs[0] + 1
        return seqs

    async def _commit(self, events: list[Event]) -> None:
        assert self._conn is not None
        try:
            # Pipelined: three round trips (the fence, the numbering, the appends with
            # the commit), not one a statement.
            async with self._conn.pipeline(), self._conn.transaction():
                if self.durability is Durability.NORMAL and any(
                    e.kind in PAID_KINDS for e in events
                ):
                    await self._conn.execute("SET LOCAL synchronous_commit TO on")
                if self.fence is not None:
                    await self._check_fence(self.fence)
                await insert_events(self._conn, events)
        except BaseException:
            for e in events:
                e.seq = None
            raise
        self.commits += 1
        self.committed_events += len(events)

    async def _check_fence(self, lease: Lease) -> None:
        assert self._conn is not None
        cur = await self._conn.execute(
            "SELECT 1 FROM owners WHERE run_id = %s AND token = %s FOR SHARE",
            (lease.run_id, lease.token),
        )
        if await cur.fetchone() is None:
            raise RunOwnedError(
                f"run {lease.run_id}: this process lost its lease on {self.path}; "
                "nothing more was committed"
            )

    async def close(self) -> None:
        """Commit what is queued, then close the connection."""
        await self.stop_drain()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def _as_database_error(exc: BaseException, where: str) -> BaseException:
    """Connection failures become one-line DatabaseErrors; anything else is kept."""
    if isinstance(exc, psycopg.OperationalError):
        return DatabaseError(f"cannot write to {where}: {first_line(exc)}")
    return exc


def _migrate_sync(url: str) -> None:
    with pg_connect(url, create=True) as con:
        migrate(con, url)
