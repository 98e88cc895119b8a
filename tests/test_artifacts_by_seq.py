"""Schema 8 (issue 14): ``artifacts`` is keyed by seq and keeps no copy of the payload.

The row of an artifact is inserted in key order, every index entry ends in that
key (not in a second copy of seq), and the payload is read from the event's
body. A schema-7 database (the payload column, no key, indexes naming seq)
upgrades on its next write, on SQLite and PostgreSQL, keeping every row; pages
still come off an index in publication order, without a sort.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pydantic import BaseModel

from flock_es import flock_type
from flock_es.log import LogWriter
from flock_es.log.event_rows import rebuild_read_models
from flock_es.log.ports import open_store
from flock_es.log.queries import BoardQueries
from flock_es.log.query_values import ArtifactFilter
from flock_es.log.schema import DB_SCHEMA_VERSION
from tests.pg import pg_url  # noqa: F401  (fixture)
from tests.two_agent_run import two_agent_run, upgraded_pg_version

# The artifacts table and its seq-naming indexes as schema 7 made them.
V7_ARTIFACTS = """CREATE TABLE artifacts (
    id TEXT NOT NULL, run_id TEXT NOT NULL, type TEXT NOT NULL, produced_by TEXT NOT NULL,
    seq INTEGER NOT NULL, ts REAL NOT NULL, payload TEXT NOT NULL,
    task_id TEXT DEFAULT NULL, correlation_id TEXT DEFAULT NULL,
    vis_kind TEXT NOT NULL DEFAULT 'public', visibility TEXT DEFAULT NULL,
    released INTEGER NOT NULL DEFAULT 0)"""
V7_INDEXES = (
    "CREATE INDEX artifacts_run_seq ON artifacts(run_id, seq)",
    "CREATE INDEX artifacts_type_seq ON artifacts(run_id, type, seq)",
    "CREATE INDEX artifacts_producer ON artifacts(run_id, produced_by, seq)",
    "CREATE INDEX artifacts_ts ON artifacts(run_id, ts)",
    "CREATE INDEX artifacts_restricted ON artifacts(run_id, seq) WHERE vis_kind <> 'public'",
    "CREATE INDEX artifacts_id_e13 ON artifacts((seq >> 13), id)",
    "CREATE INDEX artifacts_correlation_e13 ON artifacts((seq >> 13), correlation_id, seq)",
)
COLUMNS = "id, run_id, type, produced_by, seq, ts, task_id, correlation_id, vis_kind, visibility, released"


@flock_type
class Letter(BaseModel):
    text: str


@flock_type
class Answer(BaseModel):
    text: str


async def _run(db: Path | str) -> str:
    return await two_agent_run(db, Letter, Answer, 4, tags={"post"})


def _check_queries(db: Path | str, run: str) -> None:
    with open_store(db).reader() as log:
        board = BoardQueries(log)
        page, total = board.artifacts(ArtifactFilter(run_id=run, types=("Letter",)))
        assert total == 4 and [a.payload for a in page] == [{"text": str(i)} for i in range(4)]
        assert all(a.tags == ("post",) for a in page)
        first = board.artifact(page[0].id, ArtifactFilter(run_id=run))
        assert first is not None and first.payload == {"text": "0"}
        corr, n = board.artifacts(ArtifactFilter(run_id=run, correlation_id=first.correlation_id))
        assert n == 3 and sorted(a.payload["text"] for a in corr) == ["0", "0", "0?"]
        by_two, _ = board.artifacts(ArtifactFilter(run_id=run, produced_by=("two",)))
        assert [a.payload["text"] for a in by_two] == [f"{i}?" for i in range(4)]


def _sqlite(db: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


async def test_artifacts_are_keyed_by_seq_without_a_payload(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    run = await _run(db)
    info = {str(r[1]): r for r in _sqlite(db, "PRAGMA table_info(artifacts)")}
    assert "payload" not in info and info["seq"][5] == 1  # the primary key
    _check_queries(db, run)
    # A filter's page comes off its index in seq order: no sort, no scan.
    for cond in (
        "run_id = ?",
        "run_id = ? AND type = 'Answer'",
        "run_id = ? AND produced_by = 'one'",
    ):
        plan = " ".join(
            str(r[3])
            for r in _sqlite(
                db, f"EXPLAIN QUERY PLAN SELECT id FROM artifacts WHERE {cond} ORDER BY seq", (run,)
            )
        )
        assert "USING" in plan and "INDEX" in plan and "TEMP B-TREE" not in plan, plan


async def test_a_schema_7_sqlite_file_upgrades_keeping_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    run = await _run(db)
    current = _sqlite(db, "SELECT * FROM artifacts ORDER BY seq")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN")
    con.execute("ALTER TABLE artifacts RENAME TO new_artifacts")
    con.execute(V7_ARTIFACTS)
    con.execute(
        f"INSERT INTO artifacts({COLUMNS}, payload) SELECT {COLUMNS}, "
        "(SELECT json_extract(e.body, '$.payload') FROM events e WHERE e.seq = a.seq) "
        "FROM new_artifacts a ORDER BY seq DESC"  # rowids out of seq order
    )
    con.execute("DROP TABLE new_artifacts")
    for ddl in V7_INDEXES:
        con.execute(ddl)
    con.execute("PRAGMA user_version = 7")
    con.execute("COMMIT")
    con.close()
    w = await LogWriter.open(db)  # the next write upgrades the file
    await w.close()
    assert _sqlite(db, "PRAGMA user_version") == [(DB_SCHEMA_VERSION,)]
    assert _sqlite(db, "SELECT * FROM artifacts ORDER BY seq") == current
    assert "payload" not in {str(r[1]) for r in _sqlite(db, "PRAGMA table_info(artifacts)")}
    _check_queries(db, run)
    rebuild_read_models(db)
    assert _sqlite(db, "SELECT * FROM artifacts ORDER BY seq") == current


def test_a_schema_7_postgres_database_upgrades_keeping_its_rows(pg_url: str) -> None:  # noqa: F811
    from flock_es.log.pg_schema import PG_SCHEMA_VERSION, pg_connect

    run = asyncio.run(_run(pg_url))
    with pg_connect(pg_url) as con:
        con.execute("ALTER TABLE artifacts ADD COLUMN payload TEXT")
        con.execute(
            "UPDATE artifacts a SET payload = (SELECT (e.body->'payload')::text "
            "FROM events e WHERE e.seq = a.seq)"
        )
        con.execute("ALTER TABLE artifacts ALTER COLUMN payload SET NOT NULL")
        con.execute("UPDATE flock_es_meta SET value = '7' WHERE key = 'schema_version'")

    version = upgraded_pg_version(pg_url)
    with pg_connect(pg_url) as con:
        cols = {
            str(r[0])
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'artifacts'"
            )
        }
    assert version == str(PG_SCHEMA_VERSION) and PG_SCHEMA_VERSION >= 8
    assert "payload" not in cols
    _check_queries(pg_url, run)
