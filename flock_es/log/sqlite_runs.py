"""Coordination of many worker processes sharing one SQLite file (``SharedRuns``).

The same semantics as on PostgreSQL (``pg_runs``), with SQLite's one write
lock standing in for row locks and advisory locks:

- **Task leases** (``task_leases``): ``claim_tasks`` takes, in one ``BEGIN
  IMMEDIATE`` transaction, expired leases of others first, then tasks nobody
  holds. All processes are on this machine, so its clock decides expiry.
- **Serialised decisions**: ``commit_turn`` holds the write lock for one
  transaction: it checks the run lease (``turn.fence``), finds which of the
  turn's held task leases were taken over, catches up, builds, appends and
  drops the leases of the tasks it ended. The lock is taken without waiting
  (polled), then the whole turn runs without yielding, so the lock is never
  held while the process does something else, and the loop never blocks on
  another process.
- **Wake-ups**: ``PRAGMA data_version`` (it moves when another connection
  commits), polled every few milliseconds by a thread of its own
  (``sqlite_watch``), not by the event loop.
- **Durability**: a commit that carries a paid result (``model.called``,
  ``tool.called``) has the WAL fsynced before ``commit_turn`` returns, as the
  log's writer does in ``full`` durability.

The two tables are coordination state, not history (no read model derives
from them): they are created by the first worker, in one transaction, and an
older flock-es that does not know them ignores them.

Example::

    runs = await SqliteRuns.open(Path("data/flock-es.db"))
    got = await runs.claim_tasks("r-1", ["t-1", "t-2"], "host:123:0", 10.0, 8)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from flock_es.domain.events import Event
from flock_es.errors import RunOwnedError
from flock_es.log.body_paths import PROGRAM_HASH
from flock_es.log.event_rows import PAID_KINDS, write_events
from flock_es.log.lease import gone_workers, local_worker_range
from flock_es.log.ports import Durability, Lease
from flock_es.log.reader import row_to_event
from flock_es.log.schema import BUSY_TIMEOUT_MS, PRAGMAS, storage_error
from flock_es.log.shared_ports import RunTurn
from flock_es.log.sqlite_watch import DataVersionWatch

__all__ = ["SqliteRuns"]

_T = TypeVar("_T")

_DDL = (
    "CREATE TABLE IF NOT EXISTS task_leases (run_id TEXT NOT NULL, task_id TEXT NOT NULL, "
    "worker TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (run_id, task_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS task_leases_worker ON task_leases(worker)",
    "CREATE TABLE IF NOT EXISTS shared_runs (run_id TEXT PRIMARY KEY)",
)
_EVENTS = (
    "SELECT seq, run_id, kind, ts, v, body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
)
_OPEN_RUNS = (
    f"SELECT r.run_id, r.program, json_extract(e.body, '$.{PROGRAM_HASH}') FROM runs r "
    "JOIN shared_runs s ON s.run_id = r.run_id JOIN events e ON e.seq = r.first_seq "
    "WHERE r.status = 'running' ORDER BY r.first_seq"
)
_IN = "(SELECT value FROM json_each(?))"


def _json_list(items: list[str]) -> str:
    import json

    return json.dumps(items)


class SqliteRuns:
    """Task leases and per-run serialised commits on one SQLite file."""

    def __init__(self, path: Path, durability: Durability = Durability.FULL) -> None:
        self.path = path
        self.location = str(path)
        self.durability = durability
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="flock-es-shared")
        self._con: sqlite3.Connection | None = None
        self._turn_con: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # one write transaction of this process at a time
        self._watch = DataVersionWatch(path)

    @classmethod
    async def open(cls, path: Path, durability: Durability = Durability.FULL) -> SqliteRuns:
        """Connect and create the coordination tables (the log's schema must exist)."""
        runs = cls(path, durability)
        await runs._call(runs._setup)
        return runs

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(self.path, exc, writing=True) from None

    @property
    def con(self) -> sqlite3.Connection:
        """The connection of the thread: reads, claims, renewals (waits on the busy timeout)."""
        assert self._con is not None, "SqliteRuns.open() first"
        return self._con

    @property
    def turn_con(self) -> sqlite3.Connection:
        """The connection of commit turns, used on the event loop (never waits)."""
        assert self._turn_con is not None, "SqliteRuns.open() first"
        return self._turn_con

    def _setup(self) -> None:
        con = sqlite3.connect(
            self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )
        for p in PRAGMAS:
            con.execute(p)
        self._con = con
        self._in_write(lambda: [con.execute(stmt) for stmt in _DDL])
        turn = sqlite3.connect(self.path, isolation_level=None, timeout=0, check_same_thread=False)
        for p in PRAGMAS:
            turn.execute(p)
        turn.execute("PRAGMA busy_timeout=0")
        self._turn_con = turn

    def _in_write(self, body: Callable[[], _T]) -> _T:
        """``body`` in one ``BEGIN IMMEDIATE`` transaction (in the thread)."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            out = body()
            con.execute("COMMIT")
        except BaseException:
            self._rollback(con)
            raise
        return out

    async def close(self) -> None:
        await self._watch.close()
        if self._turn_con is not None:
            self._turn_con.close()
            self._turn_con = None
        if self._con is not None:
            await self._call(self._con.close)
            self._con = None
        self._thread.shutdown(wait=False)

    # --- shared runs ----------------------------------------------------------

    async def mark_shared(self, run_id: str) -> None:
        sql = "INSERT OR IGNORE INTO shared_runs(run_id) VALUES (?)"
        async with self._lock:
            await self._call(self._in_write, lambda: self.con.execute(sql, (run_id,)))

    async def is_shared(self, run_id: str) -> bool:
        def read() -> bool:
            sql = "SELECT 1 FROM shared_runs WHERE run_id = ?"
            return self.con.execute(sql, (run_id,)).fetchone() is not None

        return await self._call(read)

    async def open_runs(self) -> list[tuple[str, str | None, str | None]]:
        def read() -> list[tuple[str, str | None, str | None]]:
            return [(str(r), p, h) for r, p, h in self.con.execute(_OPEN_RUNS)]

        return await self._call(read)

    async def events_after(self, run_id: str, cursor: int) -> list[Event]:
        rows = await self._call(lambda: self.con.execute(_EVENTS, (run_id, cursor)).fetchall())
        return [e for e in (row_to_event(r) for r in rows) if e is not None]

    # --- serialised commits ---------------------------------------------------

    async def commit_turn(self, run_id: str, turn: RunTurn) -> list[Event]:
        """One ``BEGIN IMMEDIATE`` transaction: fence, lost leases, catch up, build,
        append, drop the ended tasks' leases (see the module docstring).

        The write lock is taken without waiting (retried after short sleeps), and
        the whole transaction then runs without yielding to the event loop: the
        lock is never held while this process's other tasks (an agent burning
        CPU) run, so other workers wait only for the transaction itself."""
        held = turn.held() if turn.worker else []
        async with self._lock:
            await self._acquire()
            events: list[Event] = []
            try:
                events = self._turn(run_id, turn, held)
            except BaseException as exc:
                for e in events:
                    e.seq = None
                self._rollback(self.turn_con)
                if isinstance(exc, sqlite3.Error | OSError):  # a full disk says so, as a run's
                    raise storage_error(self.path, exc, writing=True) from None
                raise
        if self.durability is Durability.FULL and any(e.kind in PAID_KINDS for e in events):
            await self._call(self._sync_wal)
        return events

    async def _acquire(self) -> None:
        """``BEGIN IMMEDIATE`` on the turn connection, polling instead of blocking."""
        con = self.turn_con
        delay, waited = 0.0002, 0.0
        while True:
            try:
                con.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise storage_error(self.path, exc, writing=True) from None
                if waited > BUSY_TIMEOUT_MS / 1000:
                    raise storage_error(self.path, exc, writing=True) from None
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.005)

    def _turn(self, run_id: str, turn: RunTurn, held: list[str]) -> list[Event]:
        con = self.turn_con
        if turn.fence is not None:
            _check_run_lease(con, turn.fence)
        lost: set[str] = set()
        if held:
            still = con.execute(
                f"SELECT task_id FROM task_leases WHERE run_id = ? AND worker = ? "
                f"AND task_id IN {_IN}",
                (run_id, turn.worker, _json_list(held)),
            ).fetchall()
            lost = set(held) - {str(r[0]) for r in still}
        rows = con.execute(_EVENTS, (run_id, turn.cursor)).fetchall()
        turn.catch_up([e for e in (row_to_event(r) for r in rows) if e is not None], lost)
        events = turn.build()
        if events:
            last = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            write_events(con, events, int(last[0]))
        ended = turn.ended(events) if turn.worker else []
        if ended:
            con.execute(
                f"DELETE FROM task_leases WHERE run_id = ? AND worker = ? AND task_id IN {_IN}",
                (run_id, turn.worker, _json_list(ended)),
            )
        con.execute("COMMIT")
        return events

    def _sync_wal(self) -> None:
        """Make the commits so far survive power loss (WAL mode, ``synchronous=NORMAL``)."""
        fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _rollback(con: sqlite3.Connection) -> None:
        if con.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")

    # --- task leases ----------------------------------------------------------

    async def claim_tasks(
        self, run_id: str, candidates: list[str], worker: str, lease: float, limit: int
    ) -> list[str]:
        if not candidates or limit <= 0:
            return []

        def claim() -> list[str]:
            now = time.time()
            rows = self.con.execute(
                f"SELECT task_id, expires FROM task_leases WHERE run_id = ? AND task_id IN {_IN}",
                (run_id, _json_list(candidates)),
            ).fetchall()
            taken = {str(t): float(x) for t, x in rows}
            expired = [t for t in candidates if t in taken and taken[t] < now][:limit]
            free = [t for t in candidates if t not in taken][: limit - len(expired)]
            self.con.executemany(
                "INSERT OR REPLACE INTO task_leases(run_id, task_id, worker, expires) "
                "VALUES (?,?,?,?)",
                [(run_id, t, worker, now + lease) for t in expired + free],
            )
            return expired + free

        async with self._lock:
            return await self._call(self._in_write, claim)

    async def renew_tasks(self, worker: str, lease: float) -> int:
        def renew() -> int:
            sql = "UPDATE task_leases SET expires = ? WHERE worker = ?"
            return int(self.con.execute(sql, (time.time() + lease, worker)).rowcount)

        async with self._lock:
            return await self._call(self._in_write, renew)

    async def release_tasks(self, run_id: str, worker: str, task_ids: list[str]) -> None:
        sql = f"DELETE FROM task_leases WHERE run_id = ? AND worker = ? AND task_id IN {_IN}"
        args = (run_id, worker, _json_list(task_ids))
        async with self._lock:
            await self._call(self._in_write, lambda: self.con.execute(sql, args))

    async def drop_gone_leases(self) -> list[tuple[str, str]]:
        low, high = local_worker_range()

        def local() -> list[str]:
            sql = "SELECT DISTINCT worker FROM task_leases WHERE worker >= ? AND worker < ?"
            return [str(r[0]) for r in self.con.execute(sql, (low, high))]

        gone = gone_workers(await self._call(local))
        if not gone:
            return []

        def drop() -> list[tuple[str, str]]:
            sql = f"DELETE FROM task_leases WHERE worker IN {_IN} RETURNING run_id, task_id"
            return [(str(r), str(t)) for r, t in self.con.execute(sql, (_json_list(gone),))]

        async with self._lock:
            return await self._call(self._in_write, drop)

    async def task_holders(self, run_id: str) -> dict[str, str]:
        def read() -> dict[str, str]:
            rows = self.con.execute(
                "SELECT task_id, worker FROM task_leases WHERE run_id = ? AND expires >= ?",
                (run_id, time.time()),
            )
            return {str(t): str(w) for t, w in rows}

        return await self._call(read)

    async def wait(self, timeout: float) -> bool:
        """Sleep until another connection commits (``DataVersionWatch``) or ``timeout``."""
        try:
            return await self._watch.wait(timeout)
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(self.path, exc) from None


def _check_run_lease(con: sqlite3.Connection, fence: Lease) -> None:
    row = con.execute("SELECT token FROM owners WHERE run_id = ?", (fence.run_id,)).fetchone()
    if row is None or row[0] != fence.token:
        raise RunOwnedError(
            f"run {fence.run_id} was taken over by another process; "
            "this one stops without writing more"
        )
