"""``write_events``: the ``runs`` read model counts each run's events in a unit, and
its last seq, however the runs' events interleave (``_event_chunks`` keeps the
current run's count in locals)."""

from __future__ import annotations

import sqlite3

import pytest

from flock_es.domain.events import Event, EventKind
from flock_es.log import event_rows
from flock_es.log.event_rows import write_events
from flock_es.log.schema import initialise


def _started(run: str) -> Event:
    body = {"model": "offline", "agents": []}
    return Event(run, EventKind.RUN_STARTED, body, 1.0)


def _done(run: str, n: int) -> Event:
    body = {"task_id": f"t-{n}", "agent": "a", "outputs": [], "attempt": 1, "duration_ms": 0.0}
    return Event(run, EventKind.TASK_COMPLETED, body, 1.0)


@pytest.mark.parametrize("chunk", [1, 2, 3, 1024])
def test_each_runs_count_and_last_seq_whatever_the_order(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_rows, "per", lambda conn, ncols: chunk)  # rows a statement
    con = sqlite3.connect(":memory:", isolation_level=None)
    initialise(con)
    con.execute("BEGIN IMMEDIATE")
    write_events(con, [_started("r-a"), _started("r-b")], 0)
    runs = ["r-a", "r-a", "r-b", "r-a", "r-b", "r-b", "r-b", "r-a"]
    events = [_done(r, i) for i, r in enumerate(runs)]
    write_events(con, events, 2)
    con.execute("COMMIT")
    assert [e.seq for e in events] == list(range(3, 11))
    rows = con.execute("SELECT run_id, last_seq, events FROM runs ORDER BY run_id").fetchall()
    assert rows == [("r-a", 10, 5), ("r-b", 9, 5)]
