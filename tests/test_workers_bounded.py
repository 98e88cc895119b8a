"""A worker joining a shared run holds its open work, not the run so far.

A run of many artifacts on a shared log (``--share``, deferred decisions from a
large ``publish_many``) is SIGKILLed once most of its tasks completed. A worker
that joins it then folds it compact (``resume.fold_for_work``): no completed
task, the views its open work pins (and at most a prune's headroom more), and a
fraction of the memory a full fold holds. (Its peak while folding follows the
most work the run ever had pending, not the run's length.)
The shared resume that finishes the run folds compact too, and the run ends as
a local one does, every task completed once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from flock_es.domain.events import EventKind, TaskStatus
from flock_es.log.backends import open_reader
from flock_es.projection.fold import fold
from flock_es.projection.state import RunState
from flock_es.runtime.program import load_program
from flock_es.runtime.worker import Worker
from tests.conftest import ROOT, completed_tasks, kill_cli_when, run_cli, traced
from tests.test_workers import artifact_counts, latest

PROGRAM = ROOT / "tests" / "programs" / "bounded_memory.py"
N = 20_000  # its full fold is several times a compact fold's floor (PRUNE_AT views)
ENV = {"BOUNDED_N": str(N), "BOUNDED_SLOW": "0.0002"}  # a window for the kill


async def _join(db: Path, run_id: str) -> RunState:
    """What an (in-process) worker of the program holds once it joined ``run_id``."""
    flock = load_program(PROGRAM).flock
    flock.program = PROGRAM  # as ``flock-es worker`` sets it: it serves this file's runs
    worker = Worker(flock, str(db))
    await worker.connect()
    try:
        await worker.poll(execute=False)  # joins the open runs of its program
        return worker.links[run_id].kernel.state
    finally:
        await worker.close()


@pytest.mark.slow  # a run of 20,000 artifacts, killed, joined, resumed: about 30 s
@pytest.mark.timeout(300)
def test_a_worker_joining_a_long_shared_run_holds_its_open_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOUNDED_N", str(N))  # the program, loaded here by the worker
    local, db = tmp_path / "local.db", tmp_path / "shared.db"
    assert run_cli(["run", PROGRAM, "--db", local, "-q"], env=ENV).returncode == 0
    args = ["run", PROGRAM, "--db", db, "--share", "-q"]
    assert kill_cli_when(args, lambda: completed_tasks(db) >= N * 17 // 20, env=ENV)
    run_id = latest(db)
    with open_reader(db) as r:
        full, full_held, _ = traced(lambda: fold(r.iter_events(run_id)))
    done = sum(1 for t in full.tasks.values() if t.status is TaskStatus.COMPLETED)
    assert N * 17 // 20 <= done < N
    del full

    state, join_held, _ = traced(lambda: asyncio.run(_join(db, run_id)))  # what it goes on holding
    assert state.compact and state.finished >= done
    assert all(t.status is not TaskStatus.COMPLETED for t in state.tasks.values())
    # Every input of its open work is held, so its agents and decisions read them.
    assert all(a in state.artifacts for t in state.tasks.values() for a in t.inputs)
    # The run has some 2N views (notes and their answers); a full fold holds them all.
    assert len(state.artifacts) < N
    assert join_held * 2 < full_held, (join_held, full_held)

    out = run_cli(["resume", run_id, "--db", db, "-q"], env=ENV, timeout=240)
    assert out.returncode == 0, out.stderr
    assert artifact_counts(db, run_id) == artifact_counts(local, latest(local))
    with open_reader(db) as r:
        ended = Counter(
            e.body["task_id"] for e in r.iter_events(run_id) if e.kind is EventKind.TASK_COMPLETED
        )
    assert len(ended) == N + 1 and set(ended.values()) == {1}  # "count" each, "look" once
