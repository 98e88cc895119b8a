"""Coordination of many worker processes on one PostgreSQL log.

- **Task leases** (``task_leases``): a worker claims a scheduled task by
  inserting its lease row, or by taking over an expired one it locked with
  ``FOR UPDATE SKIP LOCKED`` (workers never wait on each other's claims). A
  heartbeat extends all of a worker's leases; the server's clock decides
  expiry, so machines need not agree on theirs. A worker frees at once the
  leases of a worker of its own machine whose process is gone
  (``drop_gone_leases``); one on another machine is waited out.
- **Serialised decisions**: ``commit_turn`` holds the run's advisory lock for
  one transaction, hands the run's events committed since the turn's cursor
  to ``turn.catch_up``, then calls ``turn.build`` (which decides on the
  caught-up state) and appends what it returns. Two workers can never decide
  on the same stale state, so batches, gates and joins stay exact.

Example::

    runs = await PgRuns.open(url)
    got = await runs.claim_tasks("r-1", ["t-1", "t-2"], "host:123:0", 10.0, 8)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from flock_es.domain.events import Event
from flock_es.errors import DatabaseError, RunOwnedError
from flock_es.log.body_paths import PROGRAM_HASH
from flock_es.log.lease import gone_workers, local_worker_range
from flock_es.log.pg_schema import NOTIFY_CHANNEL, describe_url, first_line, migrate, pg_connect
from flock_es.log.pg_writer import insert_events
from flock_es.log.ports import Lease
from flock_es.log.reader import row_to_event
from flock_es.log.shared_ports import RunTurn

__all__ = ["POOL_WAIT", "PgRuns"]

_Connection = psycopg.AsyncConnection[tuple[Any, ...]]

POOL_WAIT = 10.0
"""Seconds a use of the pool waits for a connection (and a new one for the server)
before it is a one-line ``DatabaseError``: the pool's default, 30 s, left a worker
whose server had gone silent for 30 s, and ``run`` for a minute (issue 14's
realistic case: a server that goes away); ``pg_connect`` waits as long."""
_NOW = "extract(epoch FROM clock_timestamp())"
_RUN_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 13))"
_RUN_LEASE = "SELECT token FROM owners WHERE run_id = %s"
# The statements that find task leases by (run, task ids) are planned at each use, with
# their values, not prepared: a prepared statement's generic plan, made while a new
# database's task_leases was nearly empty, scanned every lease row the run ever had by
# its run id and filtered the task ids, dead rows too (a table that churns a row a
# task): a 160,000-task run took 240 s where planned each time it took 84 s.
_PLANNED_EACH_TIME = False
_EVENTS = (
    "SELECT seq, run_id, kind, ts, v, body::text FROM events "
    "WHERE run_id = %s AND seq > %s ORDER BY seq"
)


class PgRuns:
    """Leases and per-run serialised commits over a small connection pool."""

    def __init__(self, url: str, pool: AsyncConnectionPool) -> None:
        self.url = url
        self.location = describe_url(url)
        self.pool = pool
        self._listen: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        # Why the pool found no connection in POOL_WAIT s: the server is gone, and
        # every later use fails at once (a stopping run's close does not wait again).
        self.unreachable: str | None = None

    @classmethod
    async def open(cls, url: str, size: int = 4) -> PgRuns:
        """Connect (creating or upgrading the schema first, in one transaction)."""
        await asyncio.to_thread(_migrate, url)
        pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=size,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": POOL_WAIT},
            timeout=POOL_WAIT,
        )
        try:
            await pool.open(wait=True, timeout=10)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to {describe_url(url)}: {exc}") from None
        return cls(url, pool)

    async def close(self) -> None:
        if self._listen is not None:
            await self._listen.close()
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def _connection(self, doing: str = "read") -> AsyncIterator[_Connection]:
        """A connection of the pool. A lost one (the server ended it: a failover, an
        administrator; the network; the pool found none in time) is a one-line
        ``DatabaseError`` naming the database, as the log's writer and reader say it:
        raised in a worker's task or loop, psycopg's own error went out as a traceback."""
        if self.unreachable is not None:
            raise self._lost(doing, self.unreachable)
        try:
            async with self.pool.connection() as con:
                yield con
        except psycopg.OperationalError as exc:
            if isinstance(exc, PoolTimeout):  # no connection for POOL_WAIT s: the server is
                self.unreachable = first_line(exc)  # gone; the next uses say so at once
            raise self._lost(doing, first_line(exc)) from None

    def _lost(self, doing: str, why: str) -> DatabaseError:
        return DatabaseError(f"cannot {doing} {self.location}: {why}")

    async def mark_shared(self, run_id: str) -> None:
        """Open ``run_id`` to workers (a run driven by one process alone is not)."""
        async with self._connection("write to") as con:
            await con.execute(
                "INSERT INTO shared_runs(run_id) VALUES (%s) ON CONFLICT DO NOTHING", (run_id,)
            )

    async def open_runs(self) -> list[tuple[str, str | None, str | None]]:
        """Shared runs still running: (run id, program, program hash) from ``run.started``."""
        sql = (
            f"SELECT r.run_id, r.program, e.body->>'{PROGRAM_HASH}' FROM runs r "
            "JOIN shared_runs s ON s.run_id = r.run_id JOIN events e ON e.seq = r.first_seq "
            "WHERE r.status = 'running' ORDER BY r.first_seq"
        )
        async with self._connection() as con:
            cur = await con.execute(sql)
            return [(str(r), p, h) for r, p, h in await cur.fetchall()]

    async def events_after(self, run_id: str, cursor: int) -> list[Event]:
        async with self._connection() as con:
            cur = await con.execute(_EVENTS, (run_id, cursor))
            rows = await cur.fetchall()
        return [e for e in (row_to_event(r) for r in rows) if e is not None]

    async def is_shared(self, run_id: str) -> bool:
        async with self._connection() as con:
            cur = await con.execute("SELECT 1 FROM shared_runs WHERE run_id = %s", (run_id,))
            return await cur.fetchone() is not None

    async def commit_turn(self, run_id: str, turn: RunTurn) -> list[Event]:
        """One transaction under the run's advisory lock: check the run lease
        (``turn.fence``), lock the task leases the turn relies on (a claimant's
        ``SKIP LOCKED`` passes them by), catch up, build, append, drop the leases
        of the tasks it ended."""
        # Pipelined: the statements up to the catch-up go in one round trip, the
        # numbering of the new events in one, and the appends, the leases' release and
        # the commit in one (a statement at a time, a turn was some 13 round trips).
        async with self._connection("write to") as con, con.pipeline(), con.transaction():
            await con.execute(_RUN_LOCK, (run_id,))
            fenced = await con.execute(_RUN_LEASE, (turn.fence.run_id,)) if turn.fence else None
            held = turn.held() if turn.worker else []
            leased = (
                await con.execute(
                    "SELECT task_id FROM task_leases WHERE run_id = %s AND worker = %s "
                    "AND task_id = ANY(%s) FOR UPDATE",
                    (run_id, turn.worker, held),
                    prepare=_PLANNED_EACH_TIME,
                )
                if held
                else None
            )
            cur = await con.execute(_EVENTS, (run_id, turn.cursor))
            rows = await cur.fetchall()
            if fenced is not None and turn.fence is not None:
                _check_run_lease(await fenced.fetchone(), turn.fence)
            lost = set(held) - {str(r[0]) for r in await leased.fetchall()} if leased else set()
            turn.catch_up([e for e in (row_to_event(r) for r in rows) if e is not None], lost)
            events = turn.build()
            if events:
                await insert_events(con, events)
            ended = turn.ended(events) if turn.worker else []
            if ended:
                await con.execute(
                    "DELETE FROM task_leases WHERE run_id = %s AND worker = %s "
                    "AND task_id = ANY(%s)",
                    (run_id, turn.worker, ended),
                    prepare=_PLANNED_EACH_TIME,
                )
        return events

    async def claim_tasks(
        self, run_id: str, candidates: list[str], worker: str, lease: float, limit: int
    ) -> list[str]:
        """Up to ``limit`` of ``candidates`` (in order) that this worker now holds:
        expired leases of others first (skipping rows another claimant has locked,
        so workers never wait on each other), then tasks nobody holds."""
        if not candidates or limit <= 0:
            return []
        async with self._connection("write to") as con, con.transaction():
            cur = await con.execute(
                "WITH expired AS ("
                " SELECT run_id, task_id FROM task_leases"
                f" WHERE run_id = %s AND task_id = ANY(%s) AND expires < {_NOW}"
                " LIMIT %s FOR UPDATE SKIP LOCKED)"
                f" UPDATE task_leases l SET worker = %s, expires = {_NOW} + %s FROM expired x"
                " WHERE l.run_id = x.run_id AND l.task_id = x.task_id RETURNING l.task_id",
                (run_id, candidates, limit, worker, lease),
                prepare=_PLANNED_EACH_TIME,
            )
            got = [str(r[0]) for r in await cur.fetchall()]
            if len(got) < limit:
                cur = await con.execute(
                    "INSERT INTO task_leases(run_id, task_id, worker, expires)"
                    f" SELECT %s, u.t, %s, {_NOW} + %s"
                    " FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n)"
                    " WHERE NOT EXISTS (SELECT 1 FROM task_leases l"
                    "  WHERE l.run_id = %s AND l.task_id = u.t)"
                    " ORDER BY u.n LIMIT %s"
                    " ON CONFLICT (run_id, task_id) DO NOTHING RETURNING task_id",
                    (run_id, worker, lease, candidates, run_id, limit - len(got)),
                    prepare=_PLANNED_EACH_TIME,
                )
                got += [str(r[0]) for r in await cur.fetchall()]
        return got

    async def renew_tasks(self, worker: str, lease: float) -> int:
        """Extend every lease ``worker`` holds; returns how many it still holds."""
        async with self._connection("write to") as con:
            cur = await con.execute(
                f"UPDATE task_leases SET expires = {_NOW} + %s WHERE worker = %s", (lease, worker)
            )
            return cur.rowcount

    async def release_tasks(self, run_id: str, worker: str, task_ids: list[str]) -> None:
        async with self._connection("write to") as con:
            await con.execute(
                "DELETE FROM task_leases WHERE run_id = %s AND worker = %s AND task_id = ANY(%s)",
                (run_id, worker, task_ids),
                prepare=_PLANNED_EACH_TIME,
            )

    async def drop_gone_leases(self) -> list[tuple[str, str]]:
        async with self._connection("write to") as con:
            cur = await con.execute(
                # starts_with: a range on a linguistic collation would not be byte-wise
                "SELECT DISTINCT worker FROM task_leases WHERE starts_with(worker, %s)",
                (local_worker_range()[0],),
            )
            gone = gone_workers([str(r[0]) for r in await cur.fetchall()])
            if not gone:
                return []
            cur = await con.execute(
                "DELETE FROM task_leases WHERE worker = ANY(%s) RETURNING run_id, task_id",
                (gone,),
            )
            return [(str(r), str(t)) for r, t in await cur.fetchall()]

    async def task_holders(self, run_id: str) -> dict[str, str]:
        async with self._connection() as con:
            cur = await con.execute(
                f"SELECT task_id, worker FROM task_leases WHERE run_id = %s AND expires >= {_NOW}",
                (run_id,),
            )
            return {str(t): str(w) for t, w in await cur.fetchall()}

    async def wait(self, timeout: float) -> bool:
        """Sleep until a commit anywhere (NOTIFY) or ``timeout``; True when woken."""
        try:
            if self._listen is None:
                self._listen = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                await self._listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
            woke = False
            async for _ in self._listen.notifies(timeout=timeout, stop_after=1):
                woke = True
            return woke
        except psycopg.OperationalError as exc:
            # The next wait listens on a new connection: a lost one never wakes again.
            listen, self._listen = self._listen, None
            if listen is not None:
                with contextlib.suppress(psycopg.Error):
                    await listen.close()
            raise self._lost("read", first_line(exc)) from None


def _check_run_lease(row: tuple[Any, ...] | None, fence: Lease) -> None:
    """Raise unless ``row`` (``_RUN_LEASE``'s) says the run is still ``fence``'s."""
    if row is None or row[0] != fence.token:
        raise RunOwnedError(
            f"run {fence.run_id} was taken over by another process; "
            "this one stops without writing more"
        )


def _migrate(url: str) -> None:
    with pg_connect(url, create=True) as con:
        migrate(con, url)
