"""Resuming a run whose only pending work is an armed join window or an embargo release.

A program that closes its ``Flock`` without waiting leaves a "completed" run
with timers still due: a join group's window and an ``AfterVisibility`` ttl.
``flock-es resume`` must not call that "nothing to resume": it re-arms both
timers, so the group expires and the artifact is released (and consumed),
each exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from flock_es.log import LogReader
from flock_es.projection import fold
from flock_es.runtime.program import load_program
from flock_es.runtime.resume import nothing_to_resume, resumable_work
from tests.conftest import ROOT, run_cli

PROGRAM = ROOT / "tests" / "programs" / "pending_timers.py"


async def closed_with_armed_timers(db: Path) -> str:
    prog = load_program(PROGRAM)
    flock = prog.flock
    flock.db_path = db
    flock.program = PROGRAM
    await prog.module.seed()
    await flock.close()  # without run_until_idle: both timers are still due
    return flock.run_id


def kinds(db: Path, run_id: str) -> list[str]:
    with LogReader(db) as r:
        return [e.kind.value for e in r.events(run_id)]


@pytest.mark.slow
async def test_resume_finishes_a_completed_run_with_armed_join_window_and_release(
    tmp_path: Path,
) -> None:
    db = tmp_path / "timers.db"
    run_id = await closed_with_armed_timers(db)
    with LogReader(db) as r:
        state = fold(r.events(run_id))
    assert state.finished_status == "completed" and not state.pending_tasks()
    assert [g.key for _, g in state.waiting_gates()] == ["o1"] and len(state.unreleased) == 1
    assert resumable_work(state) == 2 and not nothing_to_resume(state)

    shown = json.loads(run_cli(["show", run_id, "--db", db, "--json"]).stdout)
    assert [g["key"] for g in shown["gates"]] == ["o1"] and shown["gates"][0]["deadline"]
    assert [u["type"] for u in shown["unreleased"]] == ["Memo"]

    out = run_cli(["resume", run_id, "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "nothing to resume" not in out.stdout
    evs = kinds(db, run_id)
    after = evs[evs.index("run.resumed") :]
    counts = Counter(after)
    assert counts["join.expired"] == 1 and counts["artifact.released"] == 1
    assert counts["task.completed"] == 1  # the reader consumed the released memo, once
    assert evs[-1] == "run.finished"
    with LogReader(db) as r:
        final = fold(r.events(run_id))
    assert final.finished_status == "completed"
    assert not final.waiting_gates() and not final.unreleased
    assert [e["key"] for e in final.expired_joins] == ["o1"]
    assert [final.artifacts[a].payload for a in final.by_type["Seen"]] == [{"what": "embargoed"}]

    # Now there really is nothing left.
    again = run_cli(["resume", run_id, "--db", db, "-q"], cwd=tmp_path)
    assert again.returncode == 0 and "nothing to resume" in again.stdout
    assert kinds(db, run_id) == evs
