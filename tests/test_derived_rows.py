"""The read-model rows SQLite derives from a unit's event rows (``PUBLIC_FROM_EVENTS``,
``CONSUMPTIONS_FROM_EVENTS``): exactly those a rebuild derives in Python, whatever
the bodies spell (visibility absent, null, public or not; missing optional keys;
escapes and non-ASCII text; several inputs; two runs in one unit; a unit in chunks)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from flock_es.domain.events import Event, EventKind
from flock_es.log import event_rows
from flock_es.log.event_rows import rebuild_read_models, write_events
from flock_es.log.query_models import READ_MODEL_TABLES
from flock_es.log.schema import initialise

RUN, OTHER = "r-a", "r-b"


def _published(run: str, i: int, **extra: Any) -> Event:
    body: dict[str, Any] = {"id": f"a-{i}", "type": "Seed", "payload": {"i": i}, **extra}
    return Event(run, EventKind.ARTIFACT_PUBLISHED, body, time.time())


def _scheduled(run: str, i: int, inputs: list[str], agent: str = "a") -> Event:
    body = {"task_id": f"t-{i}", "agent": agent, "sub_index": 0, "inputs": inputs}
    return Event(run, EventKind.TASK_SCHEDULED, body, time.time())


def _unit() -> list[Event]:
    quoted = 'Q"uo\\te\u00e9\u2028'  # escapes and non-ASCII text, through JSON and back
    return [
        _published(RUN, 1),  # no visibility, no produced_by: public, "external"
        _published(RUN, 2, visibility=None, produced_by="w", task_id="t-0"),
        _published(RUN, 3, visibility={"kind": "public"}, correlation_id="c-1"),
        _published(RUN, 4, visibility={"kind": "private", "agents": ["boss"]}),
        _published(RUN, 5, visibility={}),  # not spelt public: the Python path
        _published(OTHER, 6, visibility={"kind": "after", "ttl": 1.5}, tags=["x", "y"]),
        _published(OTHER, 7, type=quoted, produced_by=quoted, tags=["z"]),
        _scheduled(RUN, 8, ["a-1", "a-2", "a-3"]),
        _scheduled(OTHER, 9, ["a-6"], agent=quoted),
        _scheduled(RUN, 10, []),  # no inputs: no consumption
        _published(RUN, 11),
    ]


def _tables(con: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    order = {"runs": "run_id", "artifacts": "seq"}
    return {
        t: con.execute(f"SELECT * FROM {t} ORDER BY {order.get(t, 'seq, 2')}").fetchall()
        for t in READ_MODEL_TABLES
    }


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_derived_rows_are_the_rows_a_rebuild_derives(
    chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_rows, "per", lambda conn, ncols: chunk)  # rows a statement
    db = tmp_path / "d.db"
    con = sqlite3.connect(db, isolation_level=None)
    initialise(con)
    con.execute("BEGIN IMMEDIATE")
    write_events(con, [_published(RUN, 0)], 0)  # the unit's rows start after seq 1
    unit = _unit()
    write_events(con, unit, 1)
    con.execute("COMMIT")
    written = _tables(con)
    con.close()
    arts = {r[1]: r for r in written["artifacts"]}
    assert len(arts) == 9
    assert arts["a-1"][3:5] == ("Seed", "external")
    assert (arts["a-2"][4], arts["a-2"][6]) == ("w", "t-0")
    assert arts["a-3"][7] == "c-1"
    assert [arts[f"a-{i}"][8] for i in range(1, 8)] == [
        *["public"] * 3,
        *["private", "public", "after", "public"],
    ]
    assert arts["a-7"][3] == 'Q"uo\\te\u00e9\u2028'
    assert [(r[0], r[1], r[3], r[4]) for r in written["consumptions"]] == [
        (RUN, "a-1", "a", 9),
        (RUN, "a-2", "a", 9),
        (RUN, "a-3", "a", 9),
        (OTHER, "a-6", 'Q"uo\\te\u00e9\u2028', 10),
    ]
    assert len(written["artifact_tags"]) == 3
    rebuild_read_models(db)
    con = sqlite3.connect(db)
    try:
        assert _tables(con) == written
    finally:
        con.close()


def test_a_unit_without_artifacts_or_schedules_derives_no_rows(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "d.db", isolation_level=None)
    initialise(con)
    con.execute("BEGIN IMMEDIATE")
    write_events(con, [_published(RUN, 0), _scheduled(RUN, 1, ["a-0"])], 0)
    done = {"task_id": "t-1", "agent": "a", "outputs": [], "attempt": 1, "duration_ms": 0.0}
    write_events(con, [Event(RUN, EventKind.TASK_COMPLETED, done, time.time())], 2)
    con.execute("COMMIT")
    assert con.execute("SELECT count(*) FROM artifacts").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM consumptions").fetchone() == (1,)
    con.close()
