"""The writer's statement warm-up (``log.writer.warm_statements``): behaviour, never speed.

It prepares the statements of small commits in a transaction it rolls back:
nothing of it reaches the log or the read models, seqs still start at 1, and a
log whose write lock another process holds opens without waiting for it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flock_es.domain.events import Event
from flock_es.log import LogReader, LogWriter
from flock_es.log.event_rows import rebuild_read_models
from flock_es.log.query_models import READ_MODEL_TABLES
from tests.log_contract import RUN, artifact, started


def _counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("events", *READ_MODEL_TABLES)
        }
    finally:
        con.close()


async def test_the_warm_up_leaves_nothing_behind(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    assert _counts(db) == {t: 0 for t in ("events", *READ_MODEL_TABLES)}
    await w.append([started()])
    await w.append([artifact(i) for i in range(9)])
    await w.close()
    with LogReader(db) as reader:
        seqs = [e.seq for e in reader.iter_events(RUN)]
    assert seqs == list(range(1, 11))
    counts = _counts(db)
    assert counts["events"] == 10 and counts["artifacts"] == 9 and counts["runs"] == 1
    rebuild_read_models(db)  # the read models are exactly what the events derive
    assert _counts(db) == counts


async def test_a_log_locked_by_another_writer_opens_without_warming(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    await w.close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        w = await LogWriter.open(db)  # does not wait for the lock to warm up
    finally:
        other.execute("ROLLBACK")
        other.close()
    await w.append([artifact(1)])
    await w.close()
    assert _counts(db)["events"] == 2


async def test_a_wide_publish_s_unit_commits_whole_after_the_warm_up(tmp_path: Path) -> None:
    # An artifact and 200 task.scheduled (workload (e)): statements of 128, 64 and 8 rows,
    # prepared by the warm-up; the unit's rows, and only those, reach the log.
    import time

    from flock_es.domain.events import EventKind, TaskScheduled, make_event

    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    sched = [
        make_event(
            RUN,
            EventKind.TASK_SCHEDULED,
            TaskScheduled(task_id=f"t-{i}", agent=f"m{i}", sub_index=0, inputs=["a-0"]),
            time.time(),
        )
        for i in range(200)
    ]
    await w.append([artifact(0), *sched])
    await w.close()
    counts = _counts(db)
    assert counts["events"] == 202 and counts["consumptions"] == 200
    rebuild_read_models(db)
    assert _counts(db) == counts


def _artifact_rows(db: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT * FROM artifacts ORDER BY seq").fetchall()
    finally:
        con.close()


async def test_public_and_restricted_artifacts_of_one_unit_get_the_rows_a_rebuild_derives(
    tmp_path: Path,
) -> None:
    # Public artifacts are written without their visibility columns (their defaults),
    # the others with them, by two statements: the rows are the rebuilt ones either way.
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    unit = [artifact(i) for i in range(6)]
    unit[1].body["visibility"] = {"kind": "private", "agents": ["boss"]}
    unit[4].body["visibility"] = {"kind": "labelled", "required_labels": ["hr"]}
    unit[5].body["visibility"] = {"kind": "public"}
    await w.append(unit)
    await w.close()
    written = _artifact_rows(db)
    assert [(r[0], r[8], r[9]) for r in written] == [
        (2, "public", None),
        (3, "private", '{"kind":"private","agents":["boss"]}'),
        (4, "public", None),
        (5, "public", None),
        (6, "labelled", '{"kind":"labelled","required_labels":["hr"]}'),
        (7, "public", None),
    ]
    rebuild_read_models(db)
    assert _artifact_rows(db) == written


async def test_a_unit_of_two_runs_gets_each_row_its_own_run_id(tmp_path: Path) -> None:
    # The writer binds a run id once per statement: its chunks of rows never mix runs.
    import time

    from flock_es.domain.events import EventKind, TaskScheduled, make_event

    def sched(run: str, i: int) -> Event:
        body = TaskScheduled(task_id=f"t-{i}", agent="a", sub_index=0, inputs=[f"a-{i}"])
        return make_event(run, EventKind.TASK_SCHEDULED, body, time.time())

    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    other = "r-other"
    await w.append([started(), started(other)])
    unit = [artifact(1), sched(RUN, 1), artifact(2, other), sched(other, 2), artifact(3)]
    await w.append(unit)
    await w.close()
    con = sqlite3.connect(db)
    try:
        events = con.execute("SELECT seq, run_id FROM events WHERE seq > 2").fetchall()
        tables = {
            t: con.execute(f"SELECT * FROM {t} ORDER BY seq").fetchall()
            for t in ("artifacts", "consumptions")
        }
    finally:
        con.close()
    assert events == [(3, RUN), (4, RUN), (5, other), (6, other), (7, RUN)]
    assert [(r[0], r[2]) for r in tables["artifacts"]] == [(3, RUN), (5, other), (7, RUN)]
    assert [(r[4], r[0], r[1]) for r in tables["consumptions"]] == [
        (4, RUN, "a-1"),
        (6, other, "a-2"),
    ]
    rebuild_read_models(db)
    con = sqlite3.connect(db)
    try:
        for t, rows in tables.items():
            assert con.execute(f"SELECT * FROM {t} ORDER BY seq").fetchall() == rows
    finally:
        con.close()
