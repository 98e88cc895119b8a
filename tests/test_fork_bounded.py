"""A fork holds the pending work, not the parent's run (``flock_es.runtime.fork``).

The parent's prefix is read and copied a chunk at a time, the parent's state at
the fork point is its compact fold, and the child continues from the compact
fold of its own log, as a resume does: a fork of a run of 40,000 artifacts at
its end peaks far below a full fold of the same run, and still copies the
prefix exactly and ends with the parent's artifacts. (Forks in the middle of a
run: ``test_resume_fork.py``, ``test_fork_timers.py``.)
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from flock_es.domain.events import EventKind
from flock_es.log import LogReader
from flock_es.projection.fold import fold
from flock_es.runtime.fork import fork_point, plan_fork, start_fork
from tests.conftest import ROOT, run_cli, traced

PROGRAM = ROOT / "tests" / "programs" / "bounded_memory.py"
N = 20_000  # notes: 40,000 artifacts, whose full fold is several times a fork's fixed cost


async def _fork(db: Path, parent: str, at: int) -> tuple[str, bool, int]:
    """Fork ``parent`` at ``at`` with the program, run it to idle: (child id, whether
    its state is compact, how many tasks it holds)."""
    spec = importlib.util.spec_from_file_location("fork_bounded_program", PROGRAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flock = module.flock
    plan = plan_fork(db, parent, at)
    assert plan.state.compact and not plan.state.tasks  # the parent's fold: compact
    await start_fork(flock, plan, None)
    await flock.run_until_idle()
    state = flock.state
    await flock.close()
    return flock.run_id, state.compact, len(state.tasks)


@pytest.mark.slow  # 40,000 artifacts, folded and forked under tracemalloc: about 15 s
def test_a_fork_holds_its_pending_work_not_the_parents_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOUNDED_N", str(N))  # the program, loaded here for the fork
    db = tmp_path / "b.db"
    out = run_cli(["run", PROGRAM, "--db", db, "-q"], env={"BOUNDED_N": str(N)})
    assert out.returncode == 0, out.stderr
    with LogReader(db) as r:
        run = r.latest_run()
        assert run is not None
        parent = run.run_id
        events = r.events(parent)
        # At its end: what the fork holds is then the copy and the folds of the whole
        # run, not the pending work of a run still going (its own, bounded, memory).
        done = [e.seq for e in events if e.kind is EventKind.TASK_COMPLETED]
        at = fork_point(r, parent, r.last_seq(parent))
        full, _, full_peak = traced(lambda: fold(r.iter_events(parent)))
    assert len(full.tasks) == len(done)
    del full

    (child, compact, held), _, fork_peak = traced(lambda: asyncio.run(_fork(db, parent, at)))
    assert compact and held == 0
    # Its own cost is about flat past PRUNE_AT views (16 MB here, 95 MB of RSS for a
    # 100,000-artifact run), where the full fold grows by some 1 KB per artifact.
    assert fork_peak * 2 < full_peak, (fork_peak, full_peak)

    with LogReader(db) as r:
        copied = [e for e in r.events(child) if e.kind is not EventKind.RUN_STARTED]
        started = next(iter(r.iter_events(child)))
        parent_state, child_state = fold(r.iter_events(parent)), fold(r.iter_events(child))
    run_kinds = {EventKind.RUN_STARTED, EventKind.RUN_FINISHED, EventKind.RUN_RESUMED}
    prefix = [e for e in events if e.seq is not None and e.seq <= at and e.kind not in run_kinds]
    assert [(e.kind, e.body, e.ts) for e in copied[: len(prefix)]] == [
        (e.kind, e.body, e.ts) for e in prefix
    ]
    assert started.body["inherited"] == len(prefix)
    assert started.body["fork_ts"] == max(e.ts for e in prefix)
    assert {a.id: a.payload for a in child_state.artifacts.values()} == {
        a.id: a.payload for a in parent_state.artifacts.values()
    }
    assert child_state.tasks_by_status() == parent_state.tasks_by_status()
