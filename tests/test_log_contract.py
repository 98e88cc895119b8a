"""Contract suite for the event log.

Written against the log's ports (``LogWriter``/``LogReader``) through a
``backend`` fixture, so a second backend would run the same suite by adding a
parameter to the fixture.
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
from pydantic_core import PydanticSerializationError

from flock_es.domain.events import (
    SCHEMA_VERSION,
    ArtifactPublished,
    Event,
    RunStarted,
    TaskScheduled,
    make_event,
)
from flock_es.errors import DatabaseError
from flock_es.log import LogReader, LogWriter, check_database
from flock_es.log.schema import DB_SCHEMA_VERSION
from flock_es.log.writer import rebuild_read_models

RUN = "r-test-0001"


def started(run: str = RUN) -> Event:
    return make_event(run, RunStarted(model="offline", agents=[]), time.time())


def artifact(i: int, run: str = RUN) -> Event:
    body = ArtifactPublished(id=f"a-{i}", type="Seed", payload={"i": i})
    return make_event(run, body, time.time())


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / f"{request.param}.db"


async def test_append_returns_after_commit_with_gap_free_seq(backend: Path) -> None:
    w = await LogWriter.open(backend)
    await w.append([started()])
    await w.append([artifact(1), artifact(2)])
    # Visible to a separate reader connection as soon as append returned.
    with LogReader(backend) as r:
        evs = r.events(RUN)
    assert [e.seq for e in evs] == [1, 2, 3]
    assert [e.body.get("id") for e in evs[1:]] == ["a-1", "a-2"]
    assert all(e.v == SCHEMA_VERSION for e in evs)
    await w.close()


async def test_concurrent_units_are_group_committed(backend: Path) -> None:
    w = await LogWriter.open(backend)
    await w.append([started()])
    before = w.commits
    await asyncio.gather(*(w.append([artifact(i)]) for i in range(200)))
    assert w.commits - before < 200  # batched, not one transaction per unit
    with LogReader(backend) as r:
        seqs = [e.seq for e in r.events(RUN)]
    assert seqs == list(range(1, 202))
    await w.close()


async def test_a_failing_unit_leaves_nothing_and_the_writer_goes_on(backend: Path) -> None:
    w = await LogWriter.open(backend)
    await w.append([started()])
    bad = artifact(1)
    bad.body["payload"] = {"x": object()}  # not JSON: the transaction must roll back
    with pytest.raises(PydanticSerializationError):
        await w.append([artifact(0), bad])
    await w.append([artifact(2)])
    with LogReader(backend) as r:
        ids = [e.body.get("id") for e in r.events(RUN)]
    assert ids == [None, "a-2"]
    await w.close()


async def test_schedules_and_outputs_commit_together(backend: Path) -> None:
    w = await LogWriter.open(backend)
    unit = [
        started(),
        artifact(1),
        make_event(
            RUN, TaskScheduled(task_id="t-1", agent="x", sub_index=0, inputs=["a-1"]), time.time()
        ),
    ]
    await w.append(unit)
    with LogReader(backend) as r:
        assert [e.kind.value for e in r.events(RUN)] == [
            "run.started",
            "artifact.published",
            "task.scheduled",
        ]
        # task_id is denormalised for the spans view and task lookups
        assert r.query("SELECT task_id FROM events WHERE seq = 3") == [("t-1",)]
    await w.close()


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


async def test_newer_schema_is_refused(backend: Path) -> None:
    w = await LogWriter.open(backend)
    await w.append([started()])
    await w.close()
    con = sqlite3.connect(backend)
    con.execute(f"PRAGMA user_version = {DB_SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(DatabaseError, match="newer flock-es"):
        LogReader(backend)


WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from flock_es.domain.events import ArtifactPublished, RunStarted, make_event
    from flock_es.log import LogWriter

    async def main():
        w = await LogWriter.open(__import__("pathlib").Path(sys.argv[1]))
        await w.append([make_event("r-live", RunStarted(model="offline", agents=[]), time.time())])
        for i in range(60):
            body = ArtifactPublished(id=f"a-{i}", type="Seed", payload={"i": i})
            await w.append([make_event("r-live", body, time.time())])
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
