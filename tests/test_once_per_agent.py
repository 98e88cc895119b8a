"""Two subscriptions of one agent that match one artifact: two runs by default,
one with ``Flock(once_per_agent=True)`` (flock-core's rule); the choice is recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.log import LogReader
from flock_es.runtime.replay import Replayer
from tests.conftest import run_cli

PROGRAMS = Path(__file__).parent / "programs"


@flock_type
class AuditOrder(BaseModel):
    total: int


@flock_type
class AuditCheck(BaseModel):
    note: str


def build(once: bool, db: Path | None = None) -> Flock:
    flock = Flock(db=db, once_per_agent=once)
    flock.agent("audit").consumes(AuditOrder, where=lambda o: o.total > 100).consumes(
        AuditOrder, batch={"size": 2}
    ).publishes(AuditCheck).with_function(lambda o: AuditCheck(note=str(o)))
    return flock


def scheduled(db: Path) -> list[tuple[int, int]]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT body FROM events WHERE kind = 'task.scheduled' ORDER BY seq")
    out = [(json.loads(b)["sub_index"], len(json.loads(b)["inputs"])) for (b,) in rows]
    con.close()
    return out


@pytest.mark.parametrize(
    ("once", "expected"),
    [
        # each subscription takes the big order: a run of its own, and a place in the batch
        (False, [(0, 1), (1, 2)]),
        # flock-core's rule: the first matching subscription takes it, the batch waits
        (True, [(0, 1)]),
    ],
)
async def test_each_matching_subscription_runs_unless_once_per_agent(
    db_path: Path, once: bool, expected: list[tuple[int, int]]
) -> None:
    flock = build(once, db_path)
    await flock.publish_many([AuditOrder(total=500), AuditOrder(total=5)])
    await flock.run_until_idle()
    await flock.close()
    assert scheduled(db_path) == expected
    with LogReader(db_path) as reader:
        recorded = list(reader.events(flock.run_id))
    assert recorded[0].body.get("once_per_agent", False) is once
    # replay decides with the recorded rule, whatever the program says now
    report = await Replayer(recorded, build(not once).agents).run()
    assert report.identical, report.divergence


@pytest.mark.slow
@pytest.mark.parametrize(("once", "handled"), [("0", "3 handled"), ("1", "2 handled")])
def test_the_cli_runs_and_replays_either_rule(tmp_path: Path, once: str, handled: str) -> None:
    db = tmp_path / "t.db"
    env = {"FLOCK_ES_TEST_ONCE": once}
    prog = PROGRAMS / "two_subscriptions.py"
    out = run_cli(["run", prog, "--db", db, "-q"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{handled}\n"
    replay = run_cli(["replay", "latest", "--db", db], cwd=tmp_path, env=env)
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout + replay.stderr
