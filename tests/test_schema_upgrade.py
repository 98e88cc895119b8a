"""Schema 5 (issue 14): the read models have no digest-keyed index on the hot path.

A schema-4 file (primary keys on ``artifacts``, ``artifact_tags`` and
``consumptions``, the old correlation index) upgrades in place on its next
write, keeps every row, and answers the store queries; a current file's read
models are rebuilt from the events alone, byte for byte.
"""

from __future__ import annotations

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
from tests.two_agent_run import two_agent_run

# The three tables as schema 4 made them (their columns as of schema 3), and the
# index schema 5 gave up.
V4_TABLES = {
    "artifacts": """CREATE TABLE artifacts (
        id TEXT NOT NULL, run_id TEXT NOT NULL, type TEXT NOT NULL,
        produced_by TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
        payload TEXT NOT NULL, task_id TEXT DEFAULT NULL, correlation_id TEXT DEFAULT NULL,
        vis_kind TEXT NOT NULL DEFAULT 'public', visibility TEXT DEFAULT NULL,
        released INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, id))""",
    "artifact_tags": """CREATE TABLE artifact_tags (
        run_id TEXT NOT NULL, id TEXT NOT NULL, tag TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (run_id, id, tag))""",
    "consumptions": """CREATE TABLE consumptions (
        run_id TEXT NOT NULL, artifact_id TEXT NOT NULL, task_id TEXT NOT NULL,
        agent TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
        PRIMARY KEY (run_id, artifact_id, task_id))""",
}
# What schema 4's artifacts columns hold, from a current file (schema 8 keeps no payload).
V4_COLUMNS = {
    "artifacts": "id, run_id, type, produced_by, seq, ts, "
    "(SELECT json_extract(e.body, '$.payload') FROM events e WHERE e.seq = old_artifacts.seq), "
    "task_id, correlation_id, vis_kind, visibility, released"
}
V4_INDEX = "CREATE INDEX artifacts_correlation ON artifacts(run_id, correlation_id, seq)"
TABLES = ("runs", "artifacts", "artifact_tags", "consumptions")


@flock_type
class Note(BaseModel):
    text: str


@flock_type
class Echo(BaseModel):
    text: str


async def _run(db: Path) -> str:
    return await two_agent_run(db, Note, Echo, 5, tags={"urgent"})


def _rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4").fetchall() for t in TABLES}
    finally:
        con.close()


def _to_v4(db: Path) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN")
    for table, ddl in V4_TABLES.items():
        con.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
        con.execute(ddl)
        con.execute(f"INSERT INTO {table} SELECT {V4_COLUMNS.get(table, '*')} FROM old_{table}")
        con.execute(f"DROP TABLE old_{table}")
    con.execute(V4_INDEX)
    con.execute("PRAGMA user_version = 4")
    con.execute("COMMIT")
    con.close()


def _keys(db: Path) -> list[str]:
    """The automatic (primary key) indexes and the old correlation index still there."""
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")]
    finally:
        con.close()
    return [n for n in names if n.startswith("sqlite_autoindex_a") or "autoindex_con" in n] + [
        n for n in names if n == "artifacts_correlation"
    ]


async def test_read_models_with_tags_and_consumptions_rebuild_from_events(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    await _run(db)
    before = _rows(db)
    assert len(before["artifacts"]) == 15 and len(before["consumptions"]) == 10
    assert len(before["artifact_tags"]) == 5
    rebuild_read_models(db)
    assert _rows(db) == before


async def test_a_schema_4_file_upgrades_keeping_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    run = await _run(db)
    current = _rows(db)
    _to_v4(db)
    assert _keys(db)  # the old layout, as schema 4 wrote it
    w = await LogWriter.open(db)  # the next write upgrades the file
    await w.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == DB_SCHEMA_VERSION
    con.close()
    assert _keys(db) == []
    assert _rows(db) == current
    with open_store(db).reader() as log:
        board = BoardQueries(log)
        page, total = board.artifacts(ArtifactFilter(run_id=run, tags=("urgent",)))
        assert total == 5 and all(a.tags == ("urgent",) for a in page)
        first = board.artifact(page[0].id, ArtifactFilter(run_id=run))
        assert first is not None and first.payload == {"text": "0"}
        corr = board.artifacts(ArtifactFilter(run_id=run, correlation_id=first.correlation_id))
        assert corr[1] == 3  # the note and its two echoes
        used = board.consumptions(run, artifact_ids=[first.id])
        assert sorted(c.agent for c in used) == ["one", "two"]
    rebuild_read_models(db)
    assert _rows(db) == current
