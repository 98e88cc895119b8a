"""The PostgreSQL ``EventStore``: the same log on a server many machines share.

Readers and the writer are ``PgLogReader`` and ``PgLogWriter``; run ownership
is a row in ``owners``, changed in short transactions that lock the row, with
the server's clock as the only clock (machines need not agree on theirs).

Example::

    store = open_postgres_store("postgresql://postgres@127.0.0.1:5432/test")
    lease = store.claim("r-2026...")
    writer = await store.open_writer()
    ...
    store.release(lease)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg

from flock_es.errors import DatabaseError, RunOwnedError
from flock_es.log.lease import owned_error, stealable
from flock_es.log.pg_reader import PgLogReader
from flock_es.log.pg_schema import check_schema, describe_url, migrate, pg_connect
from flock_es.log.pg_writer import PgLogWriter, rebuild_on
from flock_es.log.ports import LEASE_SECONDS, Durability, Lease

__all__ = ["PostgresStore", "open_postgres_store"]

_OWNER_COLS = "run_id, token, pid, host, since, heartbeat, expires"
_NOW = "SELECT extract(epoch FROM clock_timestamp())::double precision"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from flock_es.log.pg_runs import PgRuns

Conn = psycopg.Connection[tuple[Any, ...]]


def open_postgres_store(url: str, *, readonly: bool = False) -> PostgresStore:
    """The store at ``url`` (``postgresql://user@host:port/dbname``)."""
    return PostgresStore(url, readonly=readonly)


class PostgresStore:
    """A flock-es database on a PostgreSQL server."""

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.readonly = readonly
        self._ready = False  # schema created or checked by this process

    @property
    def location(self) -> str:
        return describe_url(self.url)

    def reader(self) -> PgLogReader:
        return PgLogReader(self.url)

    async def open_writer(
        self, durability: Durability = Durability.FULL, fence: Lease | None = None
    ) -> PgLogWriter:
        self._writable()
        return await PgLogWriter.open(self.url, durability=durability, fence=fence)

    async def open_shared(self) -> PgRuns:
        from flock_es.log.pg_runs import PgRuns

        self._writable()
        return await PgRuns.open(self.url)

    def migrate(self) -> tuple[int | None, int]:
        """Create or upgrade the schema in one transaction: (version before, after)."""
        self._writable()
        with pg_connect(self.url, create=True) as con:
            return migrate(con, self.url)

    def _writable(self) -> None:
        if self.readonly:
            raise DatabaseError(f"{self.location} was opened read-only")

    def _connect(self) -> Conn:
        self._writable()
        con = pg_connect(self.url, create=not self._ready)
        try:
            if not self._ready:
                migrate(con, self.url)
                self._ready = True
        except BaseException:
            con.close()
            raise
        return con

    def _current(self, con: Conn, run_id: str) -> Lease | None:
        row = con.execute(
            f"SELECT {_OWNER_COLS} FROM owners WHERE run_id = %s FOR UPDATE", (run_id,)
        ).fetchone()
        return Lease(*row) if row else None

    def claim(
        self, run_id: str, *, lease_seconds: float = LEASE_SECONDS, force: bool = False
    ) -> Lease:
        mine = Lease.mine(run_id, lease_seconds)
        with self._connect() as con, con.transaction():
            # The row lock serialises claimants; a first claim races on the primary key,
            # so take the run's claim lock too.
            con.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (run_id,))
            now = float(con.execute(_NOW).fetchone()[0])  # type: ignore[index]
            current = self._current(con, run_id)
            if current is not None and not force and not stealable(current, now):
                raise owned_error(current, now)
            con.execute(
                f"INSERT INTO owners({_OWNER_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (run_id) DO UPDATE SET token=excluded.token, pid=excluded.pid, "
                "host=excluded.host, since=excluded.since, heartbeat=excluded.heartbeat, "
                "expires=excluded.expires",
                (run_id, mine.token, mine.pid, mine.host, now, now, now + lease_seconds),
            )
        return dataclasses.replace(mine, since=now, heartbeat=now, expires=now + lease_seconds)

    def heartbeat(self, lease: Lease) -> Lease:
        # The twin of SQLiteStore.heartbeat: the same UPDATE in this dialect, but the
        # server's clock and a transaction instead of BEGIN IMMEDIATE, so not shared.
        with self._connect() as con, con.transaction():
            now = float(con.execute(_NOW).fetchone()[0])  # type: ignore[index]
            expires = now + lease.lease_seconds
            cur = con.execute(
                "UPDATE owners SET heartbeat = %s, expires = %s WHERE run_id = %s AND token = %s",
                (now, expires, lease.run_id, lease.token),
            )
            if cur.rowcount != 1:
                current = self._current(con, lease.run_id)
                if current is None:
                    raise RunOwnedError(f"run {lease.run_id}: this process's lease was removed")
                raise owned_error(current, now)
        return dataclasses.replace(lease, heartbeat=now, expires=expires)

    def release(self, lease: Lease) -> None:
        with self._connect() as con:
            con.execute(
                "DELETE FROM owners WHERE run_id = %s AND token = %s", (lease.run_id, lease.token)
            )

    def save_snapshot(self, run_id: str, seq: int, data: bytes) -> None:
        """Store a snapshot of ``run_id``'s fold at ``seq``."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO snapshots(run_id, seq, state) VALUES (%s, %s, %s) "
                "ON CONFLICT (run_id, seq) DO UPDATE SET state = excluded.state",
                (run_id, seq, data),
            )

    def owner(self, run_id: str) -> Lease | None:
        with self.reader() as r:
            return r.owner(run_id)

    def rebuild_read_models(self, chunk: int = 10_000) -> int:
        """Drop and re-derive every read model from the events, in one transaction."""
        with self._connect() as con, con.transaction():
            con.execute("DELETE FROM snapshots")  # folds are taken again when next needed
            return rebuild_on(con, chunk)

    def check(self) -> None:
        with pg_connect(self.url) as con:
            check_schema(con, self.url)
