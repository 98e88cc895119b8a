"""The writer: one connection, group commit.

Concurrent agents hand their events to ``append``; a single task drains the
queue and commits everything waiting in one ``BEGIN IMMEDIATE`` transaction.
Each ``append`` call is one unit and is never split across transactions, so an
agent's outputs, its ``task.completed`` and the schedules they cause land
together or not at all. ``append`` returns only after the commit, which is what
lets callers make effects depend on durable events. The rows of a commit are
made in ``log/event_rows.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from operator import attrgetter
from pathlib import Path

from flock_es.domain.events import Event
from flock_es.errors import RunOwnedError
from flock_es.log import query_models as qm
from flock_es.log.event_rows import (
    ARTIFACT_COLS,
    ARTIFACTS_HEAD,
    CONSUMPTIONS_FROM_EVENTS,
    EVENTS_HEAD,
    FINISH_RUN,
    INSERT_RUN,
    PAID_KINDS,
    PROCESS_RUN,
    PUBLIC_FROM_EVENTS,
    TOUCH_RUN,
    write_events,
)
from flock_es.log.event_stream import EventStream
from flock_es.log.ports import Durability, Lease
from flock_es.log.run_counters import new_counts, touch_rows
from flock_es.log.schema import BUSY_TIMEOUT_MS, PRAGMAS, WRITER_PRAGMAS, storage_error
from flock_es.log.sqlite_file import ensure_schema
from flock_es.log.sqlite_rows import CHUNK, insert_flat, insert_rows
from flock_es.log.thread_drain import ThreadDrain
from flock_es.log.wal_checkpoint import WalCheckpointer
from flock_es.log.wal_space import preallocate_wal

__all__ = ["WARM_MAX", "LogWriter", "warm_statements"]

_KIND = attrgetter("kind")
_FULL = Durability.FULL  # a global: an enum member read off its class costs three


def _connect(path: Path, durability: Durability) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for p in (*PRAGMAS, *WRITER_PRAGMAS):
        conn.execute(p)
    wal = Path(f"{path}-wal") if durability is Durability.FULL else None
    warm_statements(conn, wal)
    return conn


# Row counts of the statements a commit uses: ``insert_rows`` splits a chunk shorter
# than ``CHUNK`` rows in powers of two, and each count is a statement text of its own,
# compiled on its first use. A 128-row one takes about a millisecond, and the first wide
# publish of a process (workload (e): 200 agents, 128 + 64 + 8 rows) paid about 2 ms of
# it on the path to its agents' start, some 30,000 instructions per agent (issue 14
# (e)); workload (b)'s first commits of 256 or more outputs, a few ms each table. Here
# it costs about 2 ms of the writer's opening, in its thread, once. Wider ones (up to
# ``CHUNK``) would cost every opening some 18 ms more, for a few ms of a wide run.
WARM_MAX = 128
_WARM_ROWS = tuple(1 << i for i in range(min(CHUNK, WARM_MAX).bit_length()))
# Restricted artifacts (whole rows, ``ARTIFACTS_HEAD``: public ones' rows are derived from
# their events, ``PUBLIC_FROM_EVENTS``) are rare: only their small inserts are warmed.
_WARM_RESTRICTED = 16


def warm_statements(conn: sqlite3.Connection, wal: Path | None = None) -> None:
    """Prepare the statements of small commits once, in a transaction rolled back.

    A connection compiles each statement text on its first use, up to 0.1 ms for
    an insert into a table with many indexes: the first commits of a run (its
    first publish, the first outputs, on the path from a publish to the agents
    it starts: issue 14 (a)) paid for it. Nothing is written; if another
    process holds the log's write lock, nothing is warmed (statements then
    compile on first use, as before). With ``wal`` (a ``full`` log's WAL), the
    WAL is also written ahead under the same lock (``wal_space``).
    """
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        if wal is not None:  # under the write lock: nobody appends to the WAL meanwhile
            preallocate_wal(wal)
        conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        seq = -(1 << 40)  # never a real seq (and rolled back anyway)
        for n in _WARM_ROWS:  # as ``write_events`` binds them: a run id, then its rows
            seq -= n
            rows = [v for i in range(n) for v in (seq + i, "", 0.0, 0, None, "")]
            insert_flat(conn, EVENTS_HEAD, 7, [["", *rows]], shared=True)
            if n <= _WARM_RESTRICTED:
                seq -= n
                restricted = [
                    (seq + i, "", "", "", "", 0.0, None, None, "", None) for i in range(n)
                ]
                insert_rows(conn, ARTIFACTS_HEAD, ARTIFACT_COLS, restricted)
        # Rows derived from a unit's events: one statement each, whatever the unit's size.
        for derived in (PUBLIC_FROM_EVENTS, CONSUMPTIONS_FROM_EVENTS):
            conn.execute(derived, (1, 0))  # seqs 1 to 0: no rows
        conn.executemany(INSERT_RUN, [("", None, "", 0.0, "", None, None, 0, 0)])
        conn.executemany(FINISH_RUN, [(0.0, "", "")])
        conn.executemany(TOUCH_RUN, touch_rows({"": new_counts()}))
        conn.executemany(PROCESS_RUN, [(None, None, "")])
        query = qm.QueryRows([("", "", "", 0)], [], [("", "")])
        for sql, args in qm.statements(query, qm.SQLITE):
            conn.executemany(sql, args)
    finally:
        conn.execute("ROLLBACK")
    _reread_small(conn)
    for sync in ("FULL", "NORMAL"):  # paid answers switch to FULL and back (``commit_sync``)
        conn.execute(f"PRAGMA synchronous={sync}")


def _reread_small(conn: sqlite3.Connection) -> None:
    """Read a small log's pages back into the connection's cache after the warm-up.

    The rollback dropped from the cache every page the warm-up wrote, and in a new
    log those are all the pages a commit writes (each table and index is one page):
    the run's first publish read them back in its commit, ten reads on the path
    from the publish to its agents (issue 14 (a)). A log of at most
    ``_REREAD_PAGES`` pages is read whole here (``quick_check`` visits every page);
    a larger one is left as it is, its next commits reading what they need.
    """
    pages = conn.execute("PRAGMA page_count").fetchone()
    if pages is not None and pages[0] <= _REREAD_PAGES:
        conn.execute("PRAGMA quick_check").fetchall()


# Logs of at most this many pages (4 KB each) are read whole when the writer opens
# (``_reread_small``): a new log has about 25.
_REREAD_PAGES = 64


class LogWriter(ThreadDrain):
    """Appends events to the SQLite log with group commit.

    One thread owns the connection and drains the queue (``ThreadDrain``): a
    whole transaction per group, and one hop back to the event loop for it.

    Example::

        writer = await LogWriter.open(Path("data/flock-es.db"))
        await writer.append([event])
        await writer.close()
    """

    def __init__(
        self,
        path: Path,
        max_batch: int = 4096,
        durability: Durability = Durability.FULL,
        fence: Lease | None = None,
    ) -> None:
        self.path = path
        # With a lease, every commit checks in its transaction that the run is still
        # ours: a process whose lease was taken over can never append to the run.
        self.fence = fence
        self.max_batch = max_batch
        self.durability = Durability(durability)
        self._synchronous = "NORMAL"
        self._waits = True  # busy_timeout is BUSY_TIMEOUT_MS (``_wait_for_lock``)
        self.synced_commits = 0
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Future[None] | None = None
        self.commits = 0
        # Checkpoints of the WAL beside the commits, not inside them (``wal_checkpoint``).
        self.wal: WalCheckpointer | None = None

    @classmethod
    async def open(
        cls,
        path: Path,
        max_batch: int = 4096,
        durability: Durability = Durability.FULL,
        fence: Lease | None = None,
        ensure: bool = True,
    ) -> LogWriter:
        """Open the writer; ``ensure=False`` when the caller already checked the file."""
        self = cls(path, max_batch, durability, fence)
        path = Path(path)
        try:
            ensure_schema(path, verify=ensure)
            self._conn = await asyncio.to_thread(_connect, path, self.durability)
        except (OSError, sqlite3.Error) as exc:
            raise storage_error(path, exc, writing=True) from None
        self.wal = WalCheckpointer(path)
        self.start_drain("flock-es-writer")
        return self

    def closed_error(self) -> Exception:
        return RuntimeError("the log writer is closed")

    def as_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, sqlite3.Error | OSError):
            return storage_error(self.path, exc)  # one line naming the database
        return exc

    def synced(self, events: list[Event]) -> bool:
        # Paid answers must survive power loss before anything acts on them: in WAL
        # mode, synchronous=FULL fsyncs the WAL at this commit (and so every earlier one).
        # The kinds read in C (``map``, ``isdisjoint``): a generator's step per event
        # was a tenth of the writer thread's own Python time in workload (b) (issue 14).
        return self.durability is _FULL and not PAID_KINDS.isdisjoint(map(_KIND, events))

    def commit_sync(self, events: list[Event]) -> None:
        """One group in one transaction, in the drain thread (waits for the write lock)."""
        assert self._conn is not None
        self._transaction(self._conn, events, wait=True)

    def commit_here(self, events: list[Event]) -> bool:
        """``commit_sync`` on the loop's thread (``ThreadDrain``), which must never
        wait for the write lock (another process may hold it for long: a
        checkpoint job, a CLI writer): False, and nothing written, if it is held."""
        assert self._conn is not None
        return self._transaction(self._conn, events, wait=False)

    def commit_stream(self, stream: EventStream) -> tuple[int, int]:
        """An ``EventStream`` in one transaction (the drain thread): each chunk written
        as it comes, committed at its end, rolled back whole on any error; the seqs
        of its first and last events. Not a paid answer: synced as usual."""
        conn = self._conn
        assert conn is not None
        if self._synchronous != "NORMAL":
            conn.execute("PRAGMA synchronous=NORMAL")
            self._synchronous = "NORMAL"
        if not self._waits:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._waits = True
        conn.execute("BEGIN IMMEDIATE")
        try:
            first = last = self._next_seq(conn)
            while (chunk := stream.take()) is not None:
                write_events(conn, chunk, last)
                last += len(chunk)
                stream.written()
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
        self.commits += 1
        if self.wal is not None:
            self.wal.committed(last - first)
        return first + 1, last

    def drain_ended(self) -> None:
        self._stop_wal()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _transaction(self, conn: sqlite3.Connection, events: list[Event], wait: bool) -> bool:
        """One whole commit (seqs assigned inside it); False if ``wait`` is False and
        another connection holds the write lock (nothing written)."""
        sync = "FULL" if self.synced(events) else "NORMAL"
        if sync != self._synchronous:
            conn.execute(f"PRAGMA synchronous={sync}")
            self._synchronous = sync
        if wait != self._waits:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS if wait else 0}")
            self._waits = wait
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not wait and exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return False
            raise
        try:
            write_events(conn, events, self._next_seq(conn))
            conn.execute("COMMIT")
        except BaseException:
            for e in events:
                e.seq = None
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
        self.commits += 1
        if sync == "FULL":
            self.synced_commits += 1
        if self.wal is not None:
            self.wal.committed(len(events))
        return True

    def _stop_wal(self) -> None:
        wal, self.wal = self.wal, None
        if wal is not None:
            wal.stop()

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        """The last seq, and the fence check, read inside the transaction (in the
        writer's thread, one statement)."""
        fence = self.fence
        if fence is None:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            return int(row[0]) if row else 0
        row = conn.execute(
            "SELECT coalesce(max(seq), 0), (SELECT token FROM owners WHERE run_id = ?) FROM events",
            (fence.run_id,),
        ).fetchone()
        if row is None or row[1] != fence.token:
            raise RunOwnedError(
                f"run {fence.run_id} was taken over by another process; "
                "this one stops without writing more"
            )
        return int(row[0])

    async def close(self) -> None:
        """Commit what is queued, then close the connection (the drain thread does)."""
        await self.stop_drain()
        if self._task is None and self._conn is not None:  # never started draining
            self._stop_wal()
            self._conn.close()
            self._conn = None
