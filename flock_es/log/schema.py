"""Schema, SQLite policy and the file checks, in one place.

Policy: WAL journal, ``synchronous=NORMAL`` (a committed transaction survives a
crash of the process; the last transactions may be lost if the machine loses
power), writers take the lock up front with ``BEGIN IMMEDIATE`` and wait on a
busy timeout, readers use their own read-only connections.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from flock_es.errors import DatabaseError

APPLICATION_ID = 0x464C4553  # "FLES": tells our files from other SQLite files
DB_SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=OFF",
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
CREATE INDEX IF NOT EXISTS events_task ON events(task_id) WHERE task_id IS NOT NULL;

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
    events      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS artifacts (
    id          TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    type        TEXT NOT NULL,
    produced_by TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    ts          REAL NOT NULL,
    payload     TEXT NOT NULL,
    PRIMARY KEY (run_id, id)
);
CREATE INDEX IF NOT EXISTS artifacts_type ON artifacts(run_id, type);

-- The tutorial's trace query ("SELECT name, start_time, duration_ms FROM spans")
-- works on this view: one span per task attempt, named <agent>.execute.
CREATE VIEW IF NOT EXISTS spans AS
SELECT
    s.run_id                                          AS run_id,
    json_extract(s.body, '$.agent') || '.execute'     AS name,
    strftime('%Y-%m-%dT%H:%M:%fZ', s.ts, 'unixepoch') AS start_time,
    (e.ts - s.ts) * 1000.0                            AS duration_ms,
    s.task_id                                         AS task_id,
    json_extract(s.body, '$.attempt')                 AS attempt,
    CASE e.kind WHEN 'task.completed' THEN 'ok' ELSE 'error' END AS status,
    s.ts                                              AS start_ts,
    e.ts                                              AS end_ts
FROM events s
JOIN events e
  ON e.task_id = s.task_id
 AND e.kind IN ('task.completed', 'task.failed')
 AND json_extract(e.body, '$.attempt') = json_extract(s.body, '$.attempt')
WHERE s.kind = 'task.started';

PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {DB_SCHEMA_VERSION};
"""


def default_db_path() -> Path:
    """``$FLOCK_ES_DB``, else ``data/flock-es.db`` under the current directory."""
    env = os.environ.get("FLOCK_ES_DB")
    return Path(env) if env else Path("data") / "flock-es.db"


def check_database(path: Path, *, must_exist: bool) -> bool:
    """Raise DatabaseError unless ``path`` is a flock-es database we can read.

    Returns False when the file does not exist yet (and ``must_exist`` is False)
    or is an empty SQLite file that the writer may initialise.
    """
    if not path.exists():
        if must_exist:
            raise DatabaseError(f"no flock-es database at {path}")
        return False
    if path.is_dir():
        raise DatabaseError(f"{path} is a directory, not a flock-es database")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            version = con.execute("PRAGMA user_version").fetchone()[0]
            tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path} is not a flock-es database ({exc})") from None
    if app_id == 0 and tables == 0:
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


def initialise(con: sqlite3.Connection) -> None:
    """Apply the policy pragmas and create the schema (idempotent)."""
    for p in PRAGMAS:
        con.execute(p)
    con.executescript(DDL)
