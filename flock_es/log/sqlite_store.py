"""The SQLite ``EventStore``: ``LogReader`` and ``LogWriter`` behind the port,
plus run ownership in the ``owners`` table.

Every lease change is one short ``BEGIN IMMEDIATE`` transaction on its own
connection, so two processes claiming at once are serialised by SQLite's
write lock: exactly one wins.

Example::

    store = SqliteStore(Path("data/flock-es.db"))
    lease = store.claim("r-2026...")
    ...
    store.release(lease)
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

from flock_es.errors import DatabaseError, RunOwnedError
from flock_es.log.lease import owned_error, stealable
from flock_es.log.ports import LEASE_SECONDS, Durability, Lease
from flock_es.log.reader import LogReader
from flock_es.log.schema import BUSY_TIMEOUT_MS, check_database, storage_error
from flock_es.log.sqlite_file import ensure_schema

TYPE_CHECKING = False
if TYPE_CHECKING:
    from flock_es.log.sqlite_runs import SqliteRuns
    from flock_es.log.writer import LogWriter

__all__ = ["SqliteStore"]

_OWNER_COLS = "run_id, token, pid, host, since, heartbeat, expires"


class SqliteStore:
    """A flock-es database file."""

    def __init__(self, path: Path, *, readonly: bool = False, checked: bool = False) -> None:
        """``checked``: the file was checked by the process that writes it (``open_store``)."""
        self.path = Path(path)
        self.readonly = readonly
        self.checked = checked
        # Schema created/upgraded and the file checked, once per store (the schema's
        # version is read every time all the same: ``_prepare``).
        self._ready = checked

    @property
    def location(self) -> str:
        return str(self.path)

    def reader(self) -> LogReader:
        # A read-only store is what the commands open: they check the file first (bounded).
        return LogReader(self.path, verify=self.readonly and not self.checked)

    async def open_writer(
        self, durability: Durability = Durability.FULL, fence: Lease | None = None
    ) -> LogWriter:
        from flock_es.log.writer import LogWriter

        self._prepare()
        return await LogWriter.open(self.path, durability=durability, fence=fence, ensure=False)

    async def open_shared(self) -> SqliteRuns:
        from flock_es.log.sqlite_runs import SqliteRuns

        self._prepare()
        return await SqliteRuns.open(self.path)

    def _writable(self) -> None:
        if self.readonly:
            raise DatabaseError(f"{self.path} was opened read-only")

    def _prepare(self) -> None:
        self._writable()
        # The bounded integrity check once per store; the header (version) every time.
        ensure_schema(self.path, verify=not self._ready)
        self._ready = True

    def _connect(self) -> sqlite3.Connection:
        self._prepare()
        try:
            return sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, writing=True) from None

    def _current(self, con: sqlite3.Connection, run_id: str) -> Lease | None:
        row = con.execute(
            f"SELECT {_OWNER_COLS} FROM owners WHERE run_id = ?", (run_id,)
        ).fetchone()
        return Lease(*row) if row else None

    def _locked(self, con: sqlite3.Connection) -> None:
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            con.close()
            raise storage_error(self.path, exc, writing=True) from None

    def claim(
        self, run_id: str, *, lease_seconds: float = LEASE_SECONDS, force: bool = False
    ) -> Lease:
        mine = Lease.mine(run_id, lease_seconds)
        con = self._connect()
        self._locked(con)
        try:
            now = time.time()
            current = self._current(con, run_id)
            if current is not None and not force and not stealable(current, now):
                raise owned_error(current, now)
            con.execute(
                f"INSERT OR REPLACE INTO owners({_OWNER_COLS}) VALUES (?,?,?,?,?,?,?)",
                (run_id, mine.token, mine.pid, mine.host, now, now, now + lease_seconds),
            )
            con.execute("COMMIT")
        except sqlite3.Error as exc:  # a full disk can refuse even the lease: one line
            raise storage_error(self.path, exc, writing=True) from None
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        return dataclasses.replace(mine, since=now, heartbeat=now, expires=now + lease_seconds)

    def heartbeat(self, lease: Lease) -> Lease:
        con = self._connect()
        self._locked(con)
        try:
            now = time.time()
            expires = now + lease.lease_seconds
            cur = con.execute(
                "UPDATE owners SET heartbeat = ?, expires = ? WHERE run_id = ? AND token = ?",
                (now, expires, lease.run_id, lease.token),
            )
            if cur.rowcount != 1:
                current = self._current(con, lease.run_id)
                who = current.describe() if current is not None else "another process"
                raise RunOwnedError(
                    f"run {lease.run_id} was taken over by {who}; this process stops "
                    "without writing more"
                )
            con.execute("COMMIT")
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        return dataclasses.replace(lease, heartbeat=now, expires=expires)

    def release(self, lease: Lease) -> None:
        con = self._connect()
        try:
            con.execute(
                "DELETE FROM owners WHERE run_id = ? AND token = ?", (lease.run_id, lease.token)
            )
        finally:
            con.close()

    def save_snapshot(self, run_id: str, seq: int, data: bytes) -> None:
        """Store a snapshot of ``run_id``'s fold at ``seq`` (one short transaction)."""
        con = self._connect()
        try:
            con.execute(
                "INSERT OR REPLACE INTO snapshots(run_id, seq, state) VALUES (?, ?, ?)",
                (run_id, seq, data),
            )
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, writing=True) from None
        finally:
            con.close()

    def owner(self, run_id: str) -> Lease | None:
        if not check_database(self.path, must_exist=False):
            return None
        with self.reader() as r:
            return r.owner(run_id)

    def rebuild_read_models(self) -> int:
        from flock_es.log.event_rows import rebuild_read_models

        self._writable()
        return rebuild_read_models(self.path)

    def check(self) -> None:
        with LogReader(self.path, verify=True):
            pass
