"""The ``spans`` view: one span per attempt, ended by the same attempt's outcome.

The view pairs each ``task.started`` with the next event of its task in its run
(a window, so the log needs no index on task ids): a retried attempt, an
attempt cut short by a crash and a fork that copies its parent's task ids each
get their own row.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flock_es.domain.events import (
    Event,
    EventKind,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    make_event,
)
from flock_es.log import LogWriter
from tests.log_contract import started


def at(run: str, kind: EventKind, body: object, ts: float) -> Event:
    return make_event(run, kind, body, ts)  # type: ignore[arg-type]


def go(run: str, task: str, attempt: int, ts: float) -> Event:
    return at(
        run, EventKind.TASK_STARTED, TaskStarted(task_id=task, agent="a", attempt=attempt), ts
    )


def done(run: str, task: str, attempt: int, ts: float) -> Event:
    body = TaskCompleted(task_id=task, agent="a", outputs=[], attempt=attempt)
    return at(run, EventKind.TASK_COMPLETED, body, ts)


def failed(run: str, task: str, attempt: int, ts: float) -> Event:
    body = TaskFailed(task_id=task, agent="a", error="x", attempt=attempt, will_retry=True)
    return at(run, EventKind.TASK_FAILED, body, ts)


async def test_spans_pair_each_attempt_with_its_own_outcome(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    w = await LogWriter.open(db)
    await w.append([started("r1"), started("r2")])
    await w.append(
        [
            go("r1", "t-retry", 1, 10.0),
            go("r1", "t-crash", 1, 10.5),
            failed("r1", "t-retry", 1, 11.0),
            go("r1", "t-retry", 2, 12.0),
            go("r2", "t-retry", 1, 12.5),  # a fork's copy of the task id, never ended
            done("r1", "t-retry", 2, 13.0),
            go("r1", "t-crash", 2, 14.0),  # resumed after a crash: attempt 1 never ended
            done("r1", "t-crash", 2, 14.25),
        ]
    )
    await w.close()
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT run_id, task_id, attempt, status, duration_ms, name FROM spans "
        "ORDER BY run_id, task_id, attempt"
    ).fetchall()
    con.close()
    assert rows == [
        ("r1", "t-crash", 1, "unfinished", None, "a.execute"),
        ("r1", "t-crash", 2, "ok", 250.0, "a.execute"),
        ("r1", "t-retry", 1, "error", 1000.0, "a.execute"),
        ("r1", "t-retry", 2, "ok", 1000.0, "a.execute"),
        ("r2", "t-retry", 1, "unfinished", None, "a.execute"),
    ]


def own(run: str, task: str, attempt: int, ts: float, took_ms: float) -> Event:
    """A completion with no task.started before it (an inline function run)."""
    body = TaskCompleted(task_id=task, agent="f", outputs=[], attempt=attempt, duration_ms=took_ms)
    return at(run, EventKind.TASK_COMPLETED, body, ts)


def _spans(db: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT task_id, attempt, status, start_ts, end_ts, duration_ms, name FROM spans "
            "ORDER BY task_id, attempt"
        ).fetchall()
    finally:
        con.close()


async def test_a_completion_without_a_start_is_a_span_of_its_own(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    w = await LogWriter.open(db)
    await w.append([started("r1")])
    await w.append(
        [
            own("r1", "t-inline", 1, 20.0, 500.0),  # started at 19.5
            go("r1", "t-retry", 1, 10.0),
            failed("r1", "t-retry", 1, 11.0),
            own("r1", "t-retry", 2, 12.0, 250.0),  # the retry finished on its first step
            go("r1", "t-crash", 1, 13.0),  # cut short; attempt 2 ran inline
            own("r1", "t-crash", 2, 15.0, 1000.0),
            go("r1", "t-paired", 1, 16.0),  # a start and its completion: one span
            done("r1", "t-paired", 1, 17.0),
            own("r1", "t-paired", 1, 17.5, 1.0),  # a repeated completion adds none
        ]
    )
    await w.close()
    assert _spans(db) == [
        ("t-crash", 1, "unfinished", 13.0, None, None, "a.execute"),
        ("t-crash", 2, "ok", 14.0, 15.0, 1000.0, "f.execute"),
        ("t-inline", 1, "ok", 19.5, 20.0, 500.0, "f.execute"),
        ("t-paired", 1, "ok", 16.0, 17.0, 1000.0, "a.execute"),
        ("t-retry", 1, "error", 10.0, 11.0, 1000.0, "a.execute"),
        ("t-retry", 2, "ok", 11.75, 12.0, 250.0, "f.execute"),
    ]


async def test_a_schema_5_file_gets_the_new_spans_view_on_upgrade(tmp_path: Path) -> None:
    from flock_es.log.schema import DB_SCHEMA_VERSION

    db = tmp_path / "old.db"
    w = await LogWriter.open(db)
    await w.append([started("r1"), go("r1", "t-a", 1, 1.0), done("r1", "t-a", 1, 2.0)])
    await w.close()
    con = sqlite3.connect(db)  # as schema 5 left it: the view knew only task.started
    con.execute("DROP VIEW spans")
    con.execute(
        "CREATE VIEW spans AS SELECT run_id, task_id, 1 AS attempt, 'ok' AS status, "
        "ts AS start_ts, NULL AS end_ts, NULL AS duration_ms, 'old' AS name "
        "FROM events WHERE kind = 'task.started'"
    )
    con.execute("PRAGMA user_version = 5")
    con.commit()
    con.close()
    w = await LogWriter.open(db)  # a writer upgrades the file
    await w.append([own("r1", "t-b", 1, 5.0, 1000.0)])
    await w.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == DB_SCHEMA_VERSION >= 6
    con.close()
    assert _spans(db) == [
        ("t-a", 1, "ok", 1.0, 2.0, 1000.0, "a.execute"),
        ("t-b", 1, "ok", 4.0, 5.0, 1000.0, "f.execute"),
    ]
