"""The log contract suite on SQLite, plus what only SQLite has (its file policy).

``EventStoreContract`` (tests/log_contract.py) holds the backend-neutral tests;
the Postgres store subclasses it the same way.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flock_es.errors import DatabaseError
from flock_es.log import LogReader, LogWriter, check_database, open_store
from flock_es.log.event_rows import rebuild_read_models
from flock_es.log.ports import EventStore, sqlite_path, store_kind
from flock_es.log.run_counters import COUNTER_COLUMNS
from flock_es.log.schema import DB_SCHEMA_VERSION
from flock_es.log.sqlite_store import SqliteStore
from tests.log_contract import EventStoreContract, started
from tests.store_contract import DOWNGRADE_TO_V2


class TestSqliteLog(EventStoreContract):
    def make_store(self, tmp_path: Path) -> EventStore:
        return open_store(tmp_path / "sqlite.db")

    def set_schema_version(self, store: EventStore, version: int) -> None:
        assert isinstance(store, SqliteStore)
        con = sqlite3.connect(store.path)
        con.execute(f"PRAGMA user_version = {version}")
        con.close()

    def downgrade_to_v2(self, store: EventStore) -> None:
        assert isinstance(store, SqliteStore)
        con = sqlite3.connect(store.path)
        for stmt in DOWNGRADE_TO_V2:
            con.execute(stmt)
        con.commit()
        con.close()
        self.set_schema_version(store, 2)

    def drop_counters(self, store: EventStore) -> None:
        assert isinstance(store, SqliteStore)
        con = sqlite3.connect(store.path)
        for col in (*COUNTER_COLUMNS, "last_ts", "pid", "host"):
            con.execute(f"ALTER TABLE runs DROP COLUMN {col}")
        con.commit()
        con.close()
        self.set_schema_version(store, 8)


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    return tmp_path / "sqlite.db"


def test_open_store_picks_the_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "x.db"), SqliteStore)
    assert sqlite_path("sqlite:///data/x.db") == Path("data/x.db")
    assert sqlite_path("sqlite:////abs/x.db") == Path("/abs/x.db")
    assert store_kind("postgresql://u:pw@h/db") == "postgresql"
    with pytest.raises(DatabaseError, match="unsupported database URL scheme 'mysql'") as err:
        open_store("mysql://u:secret@h/db")
    assert "secret" not in str(err.value)


async def test_sqlite_policy(backend: Path) -> None:
    w = await LogWriter.open(backend)
    await w.append([started()])
    con = sqlite3.connect(backend)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == DB_SCHEMA_VERSION
    con.close()
    await w.close()


async def test_read_models_are_rebuildable_from_events(backend: Path) -> None:
    from pydantic import BaseModel

    from flock_es import Flock, flock_type

    @flock_type
    class Note(BaseModel):
        text: str

    @flock_type
    class Echo(BaseModel):
        text: str

    flock = Flock(db=backend)
    flock.agent("echo").consumes(Note).with_function(lambda n: Echo(text=n.text))
    await flock.publish_many([Note(text=str(i)) for i in range(5)])
    await flock.run_until_idle()
    await flock.close()

    def snapshot() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        con = sqlite3.connect(backend)
        runs = con.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
        arts = con.execute("SELECT * FROM artifacts ORDER BY run_id, seq").fetchall()
        con.close()
        return runs, arts

    before = snapshot()
    assert len(before[1]) == 10 and before[0][0][5] == "completed"
    rebuild_read_models(backend)
    assert snapshot() == before


def test_missing_foreign_and_newer_files_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no flock-es database"):
        LogReader(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DatabaseError, match="not a flock-es database"):
        check_database(junk, must_exist=True)
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t(x)")
    con.close()
    with pytest.raises(DatabaseError, match="not a flock-es database"):
        LogReader(foreign)
    # A foreign file is not touched by a writer either.
    with pytest.raises(DatabaseError):
        asyncio.run(LogWriter.open(foreign))
    assert sqlite3.connect(foreign).execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]


WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from flock_es.domain.events import ArtifactPublished, EventKind, RunStarted, make_event
    from flock_es.log import LogWriter

    async def main():
        w = await LogWriter.open(__import__("pathlib").Path(sys.argv[1]))
        started = RunStarted(model="offline", agents=[])
        await w.append([make_event("r-live", EventKind.RUN_STARTED, started, time.time())])
        for i in range(60):
            body = ArtifactPublished(id=f"a-{i}", type="Seed", payload={"i": i})
            await w.append([make_event("r-live", EventKind.ARTIFACT_PUBLISHED, body, time.time())])
            await asyncio.sleep(0.01)
        await w.close()

    asyncio.run(main())
    """
)


def test_a_reader_follows_a_writer_in_another_process(backend: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(backend)])
    try:
        deadline = time.time() + 30
        while not backend.exists() and time.time() < deadline:
            time.sleep(0.01)
        while time.time() < deadline:
            try:
                reader = LogReader(backend)
                break
            except DatabaseError:
                time.sleep(0.01)
        seen: list[int] = []
        polls_with_news = 0
        version = -1
        while time.time() < deadline:
            v = reader.data_version()
            if v != version:
                version = v
                new = reader.events("r-live", after=seen[-1] if seen else 0)
                if new:
                    polls_with_news += 1
                    seen.extend(e.seq for e in new if e.seq is not None)
            if len(seen) == 61:
                break
            time.sleep(0.005)
        reader.close()
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert seen == list(range(1, 62))
    assert polls_with_news > 1  # it really read while the other process was writing
