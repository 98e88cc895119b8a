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
