"""The writer: one connection, group commit.

Concurrent agents hand their events to ``append``; a single task drains the
queue and commits everything waiting in one ``BEGIN IMMEDIATE`` transaction.
Each ``append`` call is one unit and is never split across transactions, so an
agent's outputs, its ``task.completed`` and the schedules they cause land
together or not at all. ``append`` returns only after the commit, which is what
lets callers make effects depend on durable events.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from flock_es.domain.events import (
    ArtifactPublished,
    Event,
    EventKind,
    RunFinished,
    RunStarted,
    TaskScheduled,
    body_as,
)
from flock_es.errors import RunOwnedError
from flock_es.log import query_models as qm
from flock_es.log.group_commit import ThreadDrain
from flock_es.log.ports import Durability, Lease
from flock_es.log.schema import (
    BUSY_TIMEOUT_MS,
    PRAGMAS,
    WRITER_PRAGMAS,
    check_database,
    storage_error,
)
from flock_es.log.sqlite_file import ensure_schema
from flock_es.log.sqlite_rows import insert_rows
from flock_es.log.wal_space import preallocate_wal

__all__ = [
    "PAID_KINDS",
    "LogWriter",
    "artifact_row",
    "dumps",
    "read_model_rows",
    "rebuild_read_models",
    "warm_statements",
    "write_events",
]

# Heads of multi-row inserts (``sqlite_rows.insert_rows`` adds the VALUES).
_EVENTS_HEAD = "INSERT INTO events(seq, run_id, kind, ts, v, task_id, body)"
_ARTIFACTS_HEAD = (
    "INSERT INTO artifacts(id, run_id, type, produced_by, seq, ts, payload, "
    "task_id, correlation_id, vis_kind, visibility)"
)
_INSERT_ARTIFACT = f"{_ARTIFACTS_HEAD} VALUES (?,?,?,?,?,?,?,?,?,?,?)"
_INSERT_RUN = (
    "INSERT OR REPLACE INTO runs(run_id, program, model, started_at, status, parent_run, "
    "fork_seq, first_seq, last_seq, events) VALUES (?,?,?,?,?,?,?,?,?,0)"
)
_FINISH_RUN = "UPDATE runs SET finished_at=?, status=? WHERE run_id=?"
_TOUCH_RUN = "UPDATE runs SET last_seq=?, events=events+? WHERE run_id=?"

# Each kind's text, looked up once per event row (an enum's .value is a property call).
_KIND_TEXT = {k: k.value for k in EventKind}
# Enum members bound to module globals for the hot paths: in Python 3.11 ``Kind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_RUN_STARTED, _RUN_FINISHED = EventKind.RUN_STARTED, EventKind.RUN_FINISHED
_RUN_RESUMED, _PUBLISHED = EventKind.RUN_RESUMED, EventKind.ARTIFACT_PUBLISHED
_SCHEDULED = EventKind.TASK_SCHEDULED

PAID_KINDS = frozenset({EventKind.MODEL_CALLED, EventKind.TOOL_CALLED})
"""Kinds whose commit carries something paid for; in ``full`` durability it is fsynced."""


def dumps(body: dict[str, Any]) -> str:
    # pydantic's Rust serialiser: several times faster than json.dumps on event bodies.
    return to_json(body).decode()


def read_model_rows(
    events: list[Event],
) -> tuple[
    list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]
]:
    """Rows for the read models derived from committed ``events`` (seq assigned)."""
    runs: list[tuple[Any, ...]] = []
    finished: list[tuple[Any, ...]] = []
    arts: list[tuple[Any, ...]] = []
    touched: dict[str, list[int]] = defaultdict(list)
    for e in events:
        # Each body is read through its kind's definition: mypy checks these keys.
        kind = e.kind
        if kind is _RUN_STARTED:
            rs = body_as(e, RunStarted)
            runs.append(
                (
                    e.run_id,
                    rs.get("program"),
                    rs["model"],
                    e.ts,
                    "running",
                    rs.get("parent_run"),
                    rs.get("fork_seq"),
                    e.seq,
                    e.seq,
                )
            )
        elif kind is _RUN_FINISHED:
            finished.append((e.ts, body_as(e, RunFinished)["status"], e.run_id))
        elif kind is _RUN_RESUMED:
            finished.append((None, "running", e.run_id))
        elif kind is _PUBLISHED:
            arts.append(artifact_row(e, body_as(e, ArtifactPublished)))
        touched[e.run_id].append(e.seq or 0)
    touch = [(max(seqs), len(seqs), run) for run, seqs in touched.items()]
    return runs, finished, arts, touch


def write_events(conn: sqlite3.Connection, events: list[Event], last_seq: int) -> None:
    """Insert ``events`` after ``last_seq`` (assigning their seqs) with their read-model
    rows, inside the caller's ``BEGIN IMMEDIATE`` transaction."""
    # The event rows are made as SQLite takes them, a chunk at a time, never held as a
    # list: a unit of a large publish (900,000 events) held its rows and their JSON at
    # once, a third of the run's peak memory (issue 14). The same pass collects the
    # rows of the read models (one loop over the events, not three: issue 14).
    side = _Side()
    insert_rows(conn, _EVENTS_HEAD, 7, _event_rows(events, last_seq, side))
    # The rare kinds (run boundaries, tags, releases) through the shared row makers,
    # in the order the statements depend on: a run's row before its counts are
    # touched, an artifact's row before its release.
    runs, finished, _, _ = read_model_rows(side.others) if side.others else ([], [], [], [])
    if runs:
        conn.executemany(_INSERT_RUN, runs)
    if side.arts:
        insert_rows(conn, _ARTIFACTS_HEAD, 11, side.arts)
        side.arts = []
    if finished:
        conn.executemany(_FINISH_RUN, finished)
    conn.executemany(_TOUCH_RUN, side.touch())
    if side.consumptions:
        insert_rows(conn, qm.CONSUMPTIONS_HEAD, 6, side.consumptions)
        side.consumptions = []
    if side.others:
        for sql, args in qm.statements(qm.query_model_rows(side.others), qm.SQLITE):
            conn.executemany(sql, args)


class _Side:
    """The read-model rows ``_event_rows`` collects on its way through a unit."""

    __slots__ = ("arts", "consumptions", "others", "runs")

    def __init__(self) -> None:
        self.arts: list[tuple[Any, ...]] = []
        self.consumptions: list[tuple[Any, ...]] = []
        self.others: list[Event] = []
        self.runs: dict[str, list[int]] = {}  # run id -> [last seq, events]

    def touch(self) -> list[tuple[Any, ...]]:
        return [(last, n, run) for run, (last, n) in self.runs.items()]


# Kinds whose read-model rows ``read_model_rows``/``query_model_rows`` make (rare ones).
_OTHER_KINDS = frozenset({_RUN_STARTED, _RUN_FINISHED, _RUN_RESUMED, EventKind.ARTIFACT_RELEASED})


def _event_rows(events: list[Event], last_seq: int, side: _Side) -> Iterator[tuple[Any, ...]]:
    """The ``events`` rows, seqs from ``last_seq + 1`` (assigned to the events as made);
    the artifacts and consumptions rows and the run counts go to ``side``."""
    seq = last_seq
    kinds = _KIND_TEXT
    arts, consumptions, others, runs = side.arts, side.consumptions, side.others, side.runs
    published, scheduled, other_kinds = _PUBLISHED, _SCHEDULED, _OTHER_KINDS
    run_id, counts = "", [0, 0]
    for e in events:
        seq += 1
        e.seq = seq
        body = e.body
        kind = e.kind
        if e.run_id != run_id:
            run_id = e.run_id
            counts = runs.setdefault(run_id, [0, 0])
        counts[0] = seq
        counts[1] += 1
        tid = body.get("task_id")  # Event.task_id, without a property call per event
        tid = tid if isinstance(tid, str) else None
        yield (seq, run_id, kinds[kind], e.ts, e.v, tid, to_json(body).decode())
        if kind is published:
            arts.append(artifact_row(e, body_as(e, ArtifactPublished)))
            if body.get("tags"):
                others.append(e)
        elif kind is scheduled:
            t = body_as(e, TaskScheduled)
            ts, agent = e.ts, t["agent"]
            consumptions.extend((run_id, aid, tid, agent, seq, ts) for aid in t["inputs"])
        elif kind in other_kinds:
            others.append(e)


def artifact_row(e: Event, a: ArtifactPublished) -> tuple[Any, ...]:
    """The ``artifacts`` read-model row of ``artifact.published`` ``e`` (seq set)."""
    return (
        a["id"],
        e.run_id,
        a["type"],
        a.get("produced_by", "external"),
        e.seq,
        e.ts,
        dumps(a["payload"]),
        a.get("task_id"),
        a.get("correlation_id"),
        *qm.visibility_columns(a.get("visibility")),
    )


def _connect(path: Path, durability: Durability) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for p in (*PRAGMAS, *WRITER_PRAGMAS):
        conn.execute(p)
    wal = Path(f"{path}-wal") if durability is Durability.FULL else None
    warm_statements(conn, wal)
    return conn


# Row counts of the statements a small commit uses (``insert_rows`` splits a short
# chunk in powers of two, and each count is a statement text of its own).
_WARM_ROWS = (1, 2, 4, 8, 16)


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
        for n in _WARM_ROWS:
            seq -= n
            rows = [(seq + i, "", "", 0.0, 0, None, "") for i in range(n)]
            insert_rows(conn, _EVENTS_HEAD, 7, rows)
            art = ("", "", "", "", 0, 0.0, "", None, None, "public", None)
            insert_rows(conn, _ARTIFACTS_HEAD, 11, [art] * n)
            insert_rows(conn, qm.CONSUMPTIONS_HEAD, 6, [("", "", "", "", 0, 0.0)] * n)
        conn.executemany(_INSERT_RUN, [("", None, "", 0.0, "", None, None, 0, 0)])
        conn.executemany(_FINISH_RUN, [(0.0, "", "")])
        conn.executemany(_TOUCH_RUN, [(0, 0, "")])
        query = qm.QueryRows([("", "", "", 0)], [], [("", "")])
        for sql, args in qm.statements(query, qm.SQLITE):
            conn.executemany(sql, args)
    finally:
        conn.execute("ROLLBACK")
    for sync in ("FULL", "NORMAL"):  # paid answers switch to FULL and back (``commit_sync``)
        conn.execute(f"PRAGMA synchronous={sync}")


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
        return self.durability is Durability.FULL and any(e.kind in PAID_KINDS for e in events)

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

    def drain_ended(self) -> None:
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
        return True

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
            self._conn.close()
            self._conn = None


def rebuild_read_models(path: Path, chunk: int = 10_000) -> int:
    """Drop and re-derive every read model (``query_models.READ_MODEL_TABLES``) from the events alone.

    Proves (and repairs) the rule that read models hold nothing the log does not.
    Returns the number of events read.
    """
    check_database(path, must_exist=True)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        for p in PRAGMAS:
            con.execute(p)
        con.execute("BEGIN IMMEDIATE")
        total = rebuild_in_transaction(con, chunk)
        con.execute("COMMIT")
    finally:
        con.close()
    return total


def rebuild_in_transaction(con: sqlite3.Connection, chunk: int = 10_000) -> int:
    """``rebuild_read_models`` inside the caller's transaction (schema upgrades use it)."""
    from flock_es.log.reader import row_to_event

    for table in qm.READ_MODEL_TABLES:
        con.execute(f"DELETE FROM {table}")
    if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'snapshots'").fetchone():
        con.execute("DELETE FROM snapshots")  # folds are taken again when next needed
    cursor, total = 0, 0
    while True:
        rows = con.execute(
            "SELECT seq, run_id, kind, ts, v, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (cursor, chunk),
        ).fetchall()
        if not rows:
            break
        events = [e for e in (row_to_event(r) for r in rows) if e is not None]
        runs, finished, arts, touch = read_model_rows(events)
        con.executemany(_INSERT_RUN, runs)
        con.executemany(_INSERT_ARTIFACT, arts)
        con.executemany(_FINISH_RUN, finished)
        con.executemany(_TOUCH_RUN, touch)
        for sql, args in qm.statements(qm.query_model_rows(events), qm.SQLITE):
            con.executemany(sql, args)
        cursor = rows[-1][0]
        total += len(rows)
    return total
