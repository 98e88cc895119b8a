"""Schema 7 (issue 14): ids, correlations and consumed ids are indexed by epochs of
8,192 events, not 65,536.

A schema-6 database (the three epoch indexes of 65,536 events) upgrades on its next
write, on SQLite and PostgreSQL: the old indexes go, the new ones come, every row
stays, and lookups by id, correlation and consumed id use the new indexes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pydantic import BaseModel

from flock_es import flock_type
from flock_es.log import LogWriter
from flock_es.log.ports import open_store
from flock_es.log.queries import BoardQueries
from flock_es.log.query_models import EPOCH_BITS
from flock_es.log.query_values import ArtifactFilter
from flock_es.log.schema import DB_SCHEMA_VERSION
from tests.pg import pg_url  # noqa: F401  (fixture)
from tests.two_agent_run import two_agent_run, upgraded_pg_version

NEW = ("artifacts_id_e13", "artifacts_correlation_e13", "consumptions_artifact_e13")
OLD = ("artifacts_id_epoch", "artifacts_correlation_epoch", "consumptions_artifact_epoch")
# The indexes as schemas 5 and 6 made them.
V6_INDEXES = (
    "CREATE INDEX artifacts_id_epoch ON artifacts((seq >> 16), id)",
    "CREATE INDEX artifacts_correlation_epoch ON artifacts((seq >> 16), correlation_id, seq)",
    "CREATE INDEX consumptions_artifact_epoch ON consumptions((seq >> 16), artifact_id)",
)
TABLES = ("runs", "artifacts", "artifact_tags", "consumptions")


@flock_type
class Memo(BaseModel):
    text: str


@flock_type
class Reply(BaseModel):
    text: str


async def _run(db: Path | str) -> str:
    return await two_agent_run(db, Memo, Reply, 4)


def _check_queries(db: Path | str, run: str) -> None:
    with open_store(db).reader() as log:
        board = BoardQueries(log)
        page, total = board.artifacts(ArtifactFilter(run_id=run, types=("Memo",)))
        assert total == 4
        first = board.artifact(page[0].id, ArtifactFilter(run_id=run))
        assert first is not None and first.payload == {"text": "0"}
        corr = board.artifacts(ArtifactFilter(run_id=run, correlation_id=first.correlation_id))
        assert corr[1] == 3  # the memo and its two replies
        used = board.consumptions(run, artifact_ids=[first.id])
        assert sorted(c.agent for c in used) == ["one", "two"]


def _sqlite_indexes(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        con.close()


def _rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4").fetchall() for t in TABLES}
    finally:
        con.close()


def test_epochs_are_8192_events() -> None:
    assert EPOCH_BITS == 13 and DB_SCHEMA_VERSION >= 7


async def test_a_schema_6_sqlite_file_upgrades_to_the_smaller_epochs(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    run = await _run(db)
    current = _rows(db)
    con = sqlite3.connect(db, isolation_level=None)
    for name in NEW:
        con.execute(f"DROP INDEX {name}")
    for ddl in V6_INDEXES:
        con.execute(ddl)
    con.execute("PRAGMA user_version = 6")
    con.close()
    assert set(OLD) <= _sqlite_indexes(db)
    w = await LogWriter.open(db)  # the next write upgrades the file
    await w.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == DB_SCHEMA_VERSION
    # A lookup by id goes through the new index (the planner repeats its expression).
    plan = " ".join(
        str(r[3])
        for r in con.execute(
            f"EXPLAIN QUERY PLAN SELECT seq FROM artifacts WHERE (seq >> {EPOCH_BITS}) "
            "IN (0, 1) AND id = ?",
            ("a-1",),
        )
    )
    con.close()
    assert "artifacts_id_e13" in plan
    names = _sqlite_indexes(db)
    assert set(NEW) <= names and not set(OLD) & names
    assert _rows(db) == current
    _check_queries(db, run)


def test_a_schema_6_postgres_database_upgrades_to_the_smaller_epochs(pg_url: str) -> None:  # noqa: F811
    from flock_es.log.pg_schema import PG_SCHEMA_VERSION, pg_connect

    run = asyncio.run(_run(pg_url))
    with pg_connect(pg_url) as con:
        for name in NEW:
            con.execute(f"DROP INDEX {name}")  # constant names
        for ddl in V6_INDEXES:
            con.execute(ddl)
        con.execute("UPDATE flock_es_meta SET value = '6' WHERE key = 'schema_version'")

    version = upgraded_pg_version(pg_url)
    with pg_connect(pg_url) as con:
        names = {str(r[0]) for r in con.execute("SELECT indexname FROM pg_indexes")}
    assert version == str(PG_SCHEMA_VERSION) and PG_SCHEMA_VERSION >= 7
    assert set(NEW) <= names and not set(OLD) & names
    _check_queries(pg_url, run)
