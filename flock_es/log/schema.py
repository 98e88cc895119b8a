"""Schema, SQLite policy and the file checks, in one place.

Policy: WAL journal; ``synchronous=NORMAL`` between syncs, and the writer
switches to ``FULL`` for each commit that must survive power loss (see
``Durability``); the writer checkpoints every ~40 MB of WAL
(``WRITER_PRAGMAS``); writers take the lock up front with ``BEGIN IMMEDIATE``
and wait on a busy timeout; readers use their own read-only connections
(``immutable=1`` where they cannot write and no write-ahead log holds anything:
``read_uri``).
The schema, ``application_id`` and ``user_version`` are written in one
transaction (``initialise``); ``flock_es.log.sqlite_file`` builds a new file
under a temporary name and links it in place, so no process ever sees one
half-made.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path

from flock_es.errors import DatabaseError
from flock_es.log.query_models import (
    ARTIFACT_COLUMNS,
    EPOCH_16_DROPS,
    QUERY_INDEXES,
    SQLITE_QUERY_TABLES,
)
from flock_es.log.run_counters import (
    COUNTERS_SINCE,
    SQLITE_COLUMNS,
    add_sqlite_columns,
    backfill_sqlite,
)
from flock_es.log.spans_view import SQLITE_SPANS
from flock_es.log.verified import suspect

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_MS",
    "DB_SCHEMA_VERSION",
    "DDL",
    "MIGRATIONS",
    "PRAGMAS",
    "READER_CHECK_SECONDS",
    "WRITER_CHECK_SECONDS",
    "WRITER_PRAGMAS",
    "check_database",
    "damaged_message",
    "default_db_path",
    "file_uri",
    "initialise",
    "read_uri",
    "statements",
    "storage_error",
]

APPLICATION_ID = 0x464C4553  # "FLES": tells our files from other SQLite files
DB_SCHEMA_VERSION = 9
"""2: the ``owners`` lease table; ``spans`` joins on run_id too (forks copy task ids).
3: the store queries' read models (``flock_es.log.query_models``).
4: ``snapshots`` of the folded state (``flock_es.projection.snapshot``).
5: no digest-keyed index on the hot path: ``artifacts``, ``artifact_tags`` and
``consumptions`` lose their primary keys; ids are indexed by epoch (``query_models``).
6: ``spans`` also from completions that were their own start (``log/spans_view.py``).
7: epochs of 8,192 events, not 65,536 (``query_models.EPOCH_BITS``).
8: ``artifacts`` keyed by ``seq`` and without ``payload`` (the event's body holds it);
its indexes end in that key (``query_models.QUERY_INDEXES``).
9: per-run counters in ``runs`` (``flock_es.log.run_counters``): ``flock-es runs``
reads them instead of aggregating the whole log."""
BUSY_TIMEOUT_MS = 10_000
WRITER_CHECK_SECONDS = 1.0  # integrity check before appending (bounded: integrity.verify)
READER_CHECK_SECONDS = 0.2  # before a command reads (the TUI's first paint stays fast)

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=OFF",
)

WRITER_PRAGMAS = (
    # SQLite checkpoints every 1,000 WAL pages (4 MB) by default, on the committing
    # thread, and each checkpoint syncs the WAL and the database: at (b)'s rate that
    # is a checkpoint every ~1,500 agent runs, a good part of the writer's wall time.
    # Here the writer's own is a backstop at 20,000 pages: from 10,000 on, a thread of
    # its own copies the WAL beside the commits (``wal_checkpoint.WalCheckpointer``),
    # so the writer's finds little left to copy, and restarts the WAL. A page written by
    # many commits is copied a few times, not once per 1,000 pages of them.
    # Durability is unchanged: it is the WAL's, and the sync policy decides it.
    "PRAGMA wal_autocheckpoint=20000",
)

_QUERY_COLUMNS = ",\n    ".join(
    f"{name} {kind}{' NOT NULL' if default != 'NULL' else ''} DEFAULT {default}"
    for name, kind, _, default in ARTIFACT_COLUMNS
)

DDL = f"""
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    run_id  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    ts      REAL    NOT NULL,
    v       INTEGER NOT NULL,
    task_id TEXT,
    body    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, seq);
-- No index on task_id: task ids are digests, so such an index takes a random-key
-- insert per task event and its write cost grows with the log (issue 14). Files
-- made before keep theirs; nothing needs it.

-- Read models: written in the same transaction as their events, rebuildable from them.
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    program     TEXT,
    model       TEXT,
    started_at  REAL,
    finished_at REAL,
    status      TEXT,
    parent_run  TEXT,
    fork_seq    INTEGER,
    first_seq   INTEGER,
    last_seq    INTEGER,
    events      INTEGER NOT NULL DEFAULT 0,
{SQLITE_COLUMNS}
);
-- Keyed by the seq of its artifact.published (schema 8): every index entry ends in
-- that key, not in a copy of it, and the payload is read from the event's body.
CREATE TABLE IF NOT EXISTS artifacts (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    type        TEXT NOT NULL,
    produced_by TEXT NOT NULL,
    ts          REAL NOT NULL,
    {_QUERY_COLUMNS}
);
{SQLITE_QUERY_TABLES}
{QUERY_INDEXES}

-- The tutorial's trace query works on the spans view (log/spans_view.py).
{SQLITE_SPANS}

-- Snapshots of a run's folded state at seq (flock_es.projection.snapshot): where
-- resume and show --at start folding. A cache, not a read model of record: any row
-- may be missing, stale or damaged, and the reader then folds from the log.
CREATE TABLE IF NOT EXISTS snapshots (
    run_id  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    state   BLOB    NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Run ownership: one lease per run, taken with BEGIN IMMEDIATE before any work.
-- Not a read model: a lease is about live processes, not history.
CREATE TABLE IF NOT EXISTS owners (
    run_id    TEXT PRIMARY KEY,
    token     TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    host      TEXT NOT NULL,
    since     REAL NOT NULL,
    heartbeat REAL NOT NULL,
    expires   REAL NOT NULL
);

PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {DB_SCHEMA_VERSION};
"""


def default_db_path() -> Path | str:
    """``$FLOCK_ES_DB`` (a path or a PostgreSQL URL), else ``data/flock-es.db``."""
    from flock_es.log.backends import parse_db

    env = os.environ.get("FLOCK_ES_DB")
    return parse_db(env) if env else Path("data") / "flock-es.db"


_OUR_TABLES = {"events", "runs", "artifacts", "owners", "artifact_tags", "consumptions"}


def file_uri(path: Path, query: str) -> str:
    """``file:PATH?QUERY`` for ``sqlite3.connect(..., uri=True)``, the path percent-encoded.

    Encoded from its bytes (``os.fsencode``): a file name that is not UTF-8 holds lone
    surrogates as a ``str`` (``os.fsdecode``), which ``quote`` of the text cannot
    encode; its bytes are what SQLite opens. Example: ``file_uri(Path("a?.db"), "mode=ro")``
    is ``file:a%3F.db?mode=ro``.
    """
    from urllib.parse import quote

    return f"file:{quote(os.fsencode(path))}?{query}"


def read_uri(path: Path) -> str:
    """A read-only URI for ``path``.

    Where this process may write the file and its directory, plain ``mode=ro``.
    Where it may not (another user's run, a read-only medium): ``immutable=1`` only
    when no write-ahead log holds anything, since SQLite then ignores it; with one,
    plain ``mode=ro`` again, which reads the log through its existing ``-shm``
    (SQLite 3.22 and later). Without that ``-shm`` nothing can read the log, and
    ``DatabaseError`` says so rather than show the file without it ("no runs", or
    pages the log replaced read as damage)."""
    base = file_uri(path.resolve(), "mode=ro")
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    if writable and not _read_only_mount(path):
        return base
    try:
        logged = os.stat(f"{path}-wal").st_size > 0
    except OSError:
        logged = False
    if not logged:
        return base + "&immutable=1"
    if os.access(f"{path}-shm", os.R_OK):
        return base
    raise DatabaseError(
        f"cannot read {path}: its write-ahead log {path.name}-wal needs {path.name}-shm, "
        "which this user cannot create; read it as a user who can write "
        f"{path.parent}, or once the process writing it has closed it"
    )


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _header(path: Path) -> tuple[int, int, int, int]:
    """(application_id, user_version, objects, our tables without app id) of ``path``."""
    con = sqlite3.connect(read_uri(path), uri=True)
    try:
        app_id = con.execute("PRAGMA application_id").fetchone()[0]
        version = con.execute("PRAGMA user_version").fetchone()[0]
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        objects = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        half = 0
        if app_id == 0 and names and names <= _OUR_TABLES and "events" in names:
            half = 0 if con.execute("SELECT 1 FROM events LIMIT 1").fetchone() else 1
    finally:
        con.close()
    return app_id, version, objects, half


def check_database(path: Path, *, must_exist: bool) -> bool:
    """Raise DatabaseError unless ``path`` is a flock-es database we can read.

    Returns False when the file does not exist yet (and ``must_exist`` is False)
    or is an empty (or half-created, event-less) SQLite file that the writer may
    initialise.
    """
    if not path.exists():
        if must_exist:
            raise DatabaseError(f"no flock-es database at {path}")
        return False
    if path.is_dir():
        raise DatabaseError(f"{path} is a directory, not a flock-es database")
    if not os.access(path, os.R_OK):
        raise DatabaseError(f"cannot read the database {path}: permission denied")
    try:
        app_id, version, objects, half = _header(path)
    except sqlite3.DatabaseError as exc:
        with path.open("rb") as f:
            sqlite_file = f.read(16) == b"SQLite format 3\x00"
        if sqlite_file and not isinstance(exc, sqlite3.OperationalError):
            raise storage_error(path, exc) from None
        raise DatabaseError(f"{path} is not a flock-es database ({exc})") from None
    except UnicodeDecodeError:  # damaged pages inside the schema's own text
        from flock_es.errors import DatabaseDamagedError

        raise DatabaseDamagedError(damaged_message(path, "the schema is unreadable")) from None
    if app_id == 0 and (objects == 0 or half):
        if must_exist:
            raise DatabaseError(f"{path} is an empty file, not a flock-es database")
        return False
    if app_id != APPLICATION_ID:
        raise DatabaseError(f"{path} is not a flock-es database")
    if version > DB_SCHEMA_VERSION:
        raise DatabaseError(
            f"{path} was written by a newer flock-es (schema {version}; "
            f"this version reads up to {DB_SCHEMA_VERSION}); upgrade flock-es"
        )
    return True


def statements(script: str) -> list[str]:
    """The statements of an SQL script, comments left out."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


MIGRATIONS: dict[int, str] = {
    # 1 -> 2: the lease table, and spans joined on run_id as well as task_id.
    1: "DROP VIEW IF EXISTS spans;",
    # 2 -> 3: artifacts_type gives way to artifacts_type_seq (pages in seq order); the
    # table is made anew (schema_upgrade) and filled by re-deriving the models.
    2: "DROP INDEX IF EXISTS artifacts_type;",
    # 5 -> 6: the spans view, remade by DDL (completions that were their own start).
    5: "DROP VIEW IF EXISTS spans;",
    # 6 -> 7: the epoch indexes of 65,536 events go; DDL makes those of 8,192.
    6: EPOCH_16_DROPS,
}


def initialise(con: sqlite3.Connection) -> None:
    """Create or upgrade the schema in one ``BEGIN IMMEDIATE`` transaction.

    ``con`` must be in autocommit mode (``isolation_level=None``). Idempotent: a
    second creator waiting on the lock finds everything there.
    """
    for p in PRAGMAS:
        con.execute(p)
    con.execute("BEGIN IMMEDIATE")
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > DB_SCHEMA_VERSION:
            raise DatabaseError("the database was written by a newer flock-es; upgrade flock-es")
        for v in range(version, DB_SCHEMA_VERSION):
            for stmt in statements(MIGRATIONS.get(v, "")):
                con.execute(stmt)
        if 0 < version < COUNTERS_SINCE:  # 8 -> 9: the runs' counters (filled below)
            add_sqlite_columns(con)
        if 0 < version < 8:  # tables in a new layout (keys, columns): copied
            from flock_es.log.schema_upgrade import remake_tables

            remake_tables(con, version)
        for i, stmt in enumerate(statements(DDL)):
            con.execute(stmt)
            if i == 0 and (pause := os.environ.get("FLOCK_ES_TEST_CREATE_PAUSE")):
                time.sleep(float(pause))  # lets a test kill the process mid-creation
        if 3 <= version < COUNTERS_SINCE:  # the runs' counters, from the events there
            backfill_sqlite(con)
        if 0 < version < 3:  # the new read models, derived from the events already there
            from flock_es.log.event_rows import rebuild_in_transaction

            rebuild_in_transaction(con)
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


def storage_error(path: Path, exc: BaseException, *, writing: bool = False) -> DatabaseError:
    """One-line ``DatabaseError`` naming ``path`` and the cause of an SQLite/OS failure."""
    from flock_es.errors import DatabaseDamagedError, DiskFullError

    if isinstance(exc, DatabaseError):
        return exc
    if writing and path.exists() and _read_only_mount(path):
        return DatabaseError(
            f"cannot write the database {path}: it is on a read-only file system "
            "(runs, show, replay and export still work)"
        )
    if writing and path.exists() and not os.access(path, os.W_OK):
        return DatabaseError(f"cannot write the database {path}: permission denied")
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if (
        name.startswith("SQLITE_FULL")
        or "disk is full" in text
        or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)
    ):
        return DiskFullError(path, text)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
        return DatabaseDamagedError(damaged_message(path, text))
    if isinstance(exc, UnicodeDecodeError | ValueError) and not isinstance(exc, sqlite3.Error):
        return DatabaseDamagedError(damaged_message(path, f"an event does not parse: {text}"))
    if "decode" in text:
        return DatabaseDamagedError(damaged_message(path, text))
    if name.startswith("SQLITE_READONLY") or (
        isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    ):
        return DatabaseError(f"cannot write the database {path}: {text}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return DatabaseError(f"the database {path} is locked by another process ({text})")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else text
    verb = "write" if writing else "use"
    return DatabaseError(f"cannot {verb} the database {path}: {reason}")


def damaged_message(path: Path | str, what: str, way_out: str | None = None) -> str:
    """``the database PATH is damaged (WHAT); WAY_OUT``: by default, the salvage of a
    file; ``way_out`` where a salvage would copy the damage as it is (an event whose
    row reads, but not as its kind)."""
    # Every report of a damaged file comes here: it is never marked as left intact
    # (``verified``), so the next open checks it again.
    suspect(path)
    what = " ".join(what.split())  # one line, whatever SQLite said
    if way_out is None and "://" not in str(path):  # a server has its own recovery
        way_out = f"copy what still reads with `flock-es salvage recovered.db --db {path}`"
    return f"the database {path} is damaged ({what})" + (f"; {way_out}" if way_out else "")
