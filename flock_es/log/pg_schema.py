"""The PostgreSQL schema, its migrations and the connection policy, in one place.

The tables mirror the SQLite log (``events`` with a global gap-free ``seq``,
the ``runs`` and ``artifacts`` read models, the ``spans`` view) plus two
coordination tables that hold no history: ``owners`` (the run ownership
lease) and ``task_leases`` (which worker executes which task).

Ordering (the gap problem): every append transaction first takes one
transaction-scoped advisory lock, then numbers its events ``max(seq) + 1 ...``
and commits. PostgreSQL makes a commit visible before it releases the
transaction's locks, so the next append cannot get a seq until the previous one
is visible: seqs become visible in order, and a reader polling ``seq > cursor``
can never skip an event that commits late.

Example::

    with psycopg.connect(url, autocommit=True) as con:
        migrate(con)
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from flock_es.errors import DatabaseError
from flock_es.log.body_paths import ATTEMPT, DONE, FAILED, STARTED, STARTED_AGENT
from flock_es.log.pg_url import describe_url
from flock_es.log.query_models import EPOCH_16_DROPS, PG_QUERY_DDL, PG_QUERY_INDEXES
from flock_es.log.run_counters import PG_ADD_COLUMNS, PG_BACKFILL
from flock_es.log.spans_view import PG_SPANS

__all__ = [
    "APPEND_LOCK",
    "PG_SCHEMA_VERSION",
    "check_schema",
    "describe_url",
    "first_line",
    "is_postgres_url",
    "migrate",
    "pg_connect",
]

PG_SCHEMA_VERSION = 9
APPEND_LOCK = 0x464C4553_0001  # advisory lock key that serialises appends
MIGRATE_LOCK = 0x464C4553_0002  # advisory lock key held while creating/upgrading the schema
NOTIFY_CHANNEL = "flock_es_events"
APPLICATION = "flock-es"

# The spans view below has a SQLite twin (log/schema.py), kept as a separate text on
# purpose: only the dialect differs (->> vs json_extract, to_char vs strftime); the
# field names and kinds of both come from log/body_paths.py.
_V1 = f"""
CREATE TABLE flock_es_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE events (
    seq     BIGINT PRIMARY KEY,
    run_id  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    ts      DOUBLE PRECISION NOT NULL,
    v       INTEGER NOT NULL,
    task_id TEXT,
    body    JSON    NOT NULL
);
CREATE INDEX events_run ON events(run_id, seq);
CREATE INDEX events_task ON events(task_id) WHERE task_id IS NOT NULL;

-- Read models: written in the same transaction as their events, rebuildable from them.
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    program     TEXT,
    model       TEXT,
    started_at  DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    status      TEXT,
    parent_run  TEXT,
    fork_seq    BIGINT,
    first_seq   BIGINT,
    last_seq    BIGINT,
    events      BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE artifacts (
    id          TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    type        TEXT NOT NULL,
    produced_by TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    ts          DOUBLE PRECISION NOT NULL,
    payload     TEXT NOT NULL,
    PRIMARY KEY (run_id, id)
);
CREATE INDEX artifacts_type ON artifacts(run_id, type);

-- Coordination, not history: who owns a run, who executes a task, until when.
-- Times are the server's clock (epoch seconds), so machines need not agree on theirs.
CREATE TABLE owners (
    run_id    TEXT PRIMARY KEY,
    token     TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    host      TEXT NOT NULL,
    since     DOUBLE PRECISION NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL,
    expires   DOUBLE PRECISION NOT NULL
);
CREATE TABLE task_leases (
    run_id   TEXT NOT NULL,
    task_id  TEXT NOT NULL,
    worker   TEXT NOT NULL,
    expires  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, task_id)
);

-- One span per task.started (per attempt), named <agent>.execute (the tutorial's
-- trace query); an attempt that never ended is 'unfinished' with no duration.
CREATE VIEW spans AS
SELECT
    s.run_id                                          AS run_id,
    (s.body->>'{STARTED_AGENT}') || '.execute'                  AS name,
    to_char(to_timestamp(s.ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                                                      AS start_time,
    (e.ts - s.ts) * 1000.0                            AS duration_ms,
    s.task_id                                         AS task_id,
    (s.body->>'{ATTEMPT}')::INTEGER                     AS attempt,
    CASE e.kind WHEN '{DONE}' THEN 'ok' WHEN '{FAILED}' THEN 'error'
         ELSE 'unfinished' END                        AS status,
    s.ts                                              AS start_ts,
    e.ts                                              AS end_ts
FROM events s
LEFT JOIN events e
  ON e.run_id = s.run_id
 AND e.task_id = s.task_id
 AND e.kind IN ('{DONE}', '{FAILED}')
 AND (e.body->>'{ATTEMPT}') = (s.body->>'{ATTEMPT}')
WHERE s.kind = '{STARTED}';
"""

# 2: runs open to `flock-es worker` (a run one process drives alone is not).
_V2 = """
CREATE TABLE shared_runs (
    run_id TEXT PRIMARY KEY
);
"""

# 3: the store queries' read models (flock_es.log.query_models); an upgraded
# database gets them filled from its events in the same transaction.
_V3 = PG_QUERY_DDL

# 4: snapshots of a run's folded state (flock_es.projection.snapshot), where resume
# and show --at start folding: a cache any row of which may be missing or stale.
_V4 = """
CREATE TABLE snapshots (
    run_id TEXT   NOT NULL,
    seq    BIGINT NOT NULL,
    state  BYTEA  NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""

# 5: no digest-keyed index on the hot path (issue 14; flock_es.log.query_models): the
# read models lose their primary keys, ids and correlations are indexed by epoch.
_V5 = (
    """
ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_pkey;
ALTER TABLE artifact_tags DROP CONSTRAINT IF EXISTS artifact_tags_pkey;
ALTER TABLE consumptions DROP CONSTRAINT IF EXISTS consumptions_pkey;
DROP INDEX IF EXISTS artifacts_correlation;
"""
    + PG_QUERY_INDEXES
)

# 6: spans also from completions that were their own start (inline function runs
# record no task.started; see flock_es.log.spans_view).
_V6 = PG_SPANS

# 7: epochs of 8,192 events, not 65,536 (flock_es.log.query_models.EPOCH_BITS).
_V7 = EPOCH_16_DROPS + PG_QUERY_INDEXES

# 8: an artifact's payload is read from its event's body, not stored twice (as on
# SQLite, whose artifacts table is also keyed by seq there: log/schema.py).
_V8 = "ALTER TABLE artifacts DROP COLUMN IF EXISTS payload;"

# 9: per-run counters in runs (flock_es.log.run_counters), filled from the events:
# `flock-es runs` reads them instead of aggregating the whole log.
_V9 = PG_ADD_COLUMNS + PG_BACKFILL

# MIGRATIONS[n] upgrades a schema at version n to n + 1; index 0 creates it.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)
assert len(MIGRATIONS) == PG_SCHEMA_VERSION


def is_postgres_url(db: object) -> bool:
    """True for ``postgresql://...`` and ``postgres://...`` database URLs."""
    return str(db).startswith(("postgresql://", "postgres://"))


def first_line(exc: BaseException) -> str:
    """The first line of a driver error's text (its class name if it has none): the
    part of a one-line ``DatabaseError`` that says what the server or network did."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def pg_connect(
    url: str, *, autocommit: bool = True, create: bool = False, timeout: int = 10
) -> psycopg.Connection[tuple[object, ...]]:
    """A synchronous connection, or a one-line DatabaseError naming the server.

    With ``create`` (the first use by a writer, ``migrate``), a database the
    server does not have is created first, as a SQLite file would be: a fresh
    server (``docker run postgres``) needs no ``createdb``.
    """
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=timeout)
    except psycopg.Error as exc:
        first = first_line(exc)
        missing = _missing_database(first, url)
        if missing and create:
            _create_database(url, missing)
            return pg_connect(url, autocommit=autocommit)
        if missing:
            first = f'database "{missing}" does not exist; `flock-es migrate --db URL` creates it'
        raise DatabaseError(f"cannot connect to {describe_url(url)}: {first}") from None


def _missing_database(message: str, url: str) -> str | None:
    """The database name, when the server refused the connection for lack of it."""
    name = unquote(urlsplit(url).path.lstrip("/"))
    return name if name and f'database "{name}" does not exist' in message else None


def _create_database(url: str, name: str) -> None:
    """``CREATE DATABASE name`` through the server's maintenance database (another
    process creating it at the same moment is fine)."""
    parts = urlsplit(url)
    try:
        con = pg_connect(urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, "")))
    except DatabaseError:  # a server without the usual maintenance database
        con = pg_connect(urlunsplit((parts.scheme, parts.netloc, "/template1", parts.query, "")))
    with con:
        try:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            pass
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot create the database {describe_url(url)}: {str(exc).strip()}"
            ) from None


def _version(con: psycopg.Connection[tuple[object, ...]], url: str) -> int | None:
    """The schema version, None for a database without flock-es tables."""
    row = con.execute(
        "SELECT to_regclass('flock_es_meta') IS NOT NULL, to_regclass('events') IS NOT NULL"
    ).fetchone()
    assert row is not None
    has_meta, has_events = bool(row[0]), bool(row[1])
    if not has_meta:
        if has_events:
            raise DatabaseError(f"{describe_url(url)} is not a flock-es database")
        return None
    meta = {str(k): str(v) for k, v in con.execute("SELECT key, value FROM flock_es_meta")}
    if meta.get("application") != APPLICATION:
        raise DatabaseError(f"{describe_url(url)} is not a flock-es database")
    version = int(str(meta.get("schema_version", "0")))
    if version > PG_SCHEMA_VERSION:
        raise DatabaseError(
            f"{describe_url(url)} was written by a newer flock-es (schema {version}; "
            f"this version reads up to {PG_SCHEMA_VERSION}); upgrade flock-es"
        )
    return version


def check_schema(con: psycopg.Connection[tuple[object, ...]], url: str) -> None:
    """Raise DatabaseError unless the database holds a current flock-es schema."""
    version = _version(con, url)
    if version is None:
        raise DatabaseError(
            f"no flock-es database at {describe_url(url)} (run `flock-es migrate --db URL`)"
        )
    if version < PG_SCHEMA_VERSION:
        raise DatabaseError(
            f"{describe_url(url)} has schema {version}; run `flock-es migrate --db URL`"
        )


def migrate(con: psycopg.Connection[tuple[object, ...]], url: str) -> tuple[int | None, int]:
    """Create or upgrade the schema in one transaction; returns (before, after).

    Concurrent first uses are safe: the migration holds an advisory lock, and the
    second process finds the schema already there.
    """
    try:
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            before = _version(con, url)
            start = 0 if before is None else before
            for step in MIGRATIONS[start:]:
                con.execute(step)
            if before is not None and before < 3:
                from flock_es.log.pg_writer import rebuild_on

                rebuild_on(con)
            if before is None:
                con.execute(
                    "INSERT INTO flock_es_meta(key, value) VALUES ('application', %s)",
                    (APPLICATION,),
                )
            con.execute(
                "INSERT INTO flock_es_meta(key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(PG_SCHEMA_VERSION),),
            )
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot migrate {describe_url(url)}: {exc}") from None
    return before, PG_SCHEMA_VERSION
