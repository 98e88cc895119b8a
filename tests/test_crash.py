"""Acceptance: SIGKILL a real ``flock-es run`` at 20+ seeded points, resume each through the CLI.

The program (tests/programs/crash_pipeline.py) has a fan-out, a chain of model
agents with simulated latency, and a batch. For every kill point the resumed
run must end with the same folded state as an uninterrupted run, with every
artifact once, no task completed twice and no model call recorded twice.

Kill points are event counts: the test polls the database with a reader and
kills the process as soon as that many events are committed.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from flock_es.errors import DatabaseError
from flock_es.log.reader import LogReader
from flock_es.projection.fold import fold
from flock_es.projection.state import RunState
from tests.conftest import CLI, ROOT, cli_env, run_cli

PROGRAM = ROOT / "tests" / "programs" / "crash_pipeline.py"
KILL_POINTS = 22
SEED = 20261128


def canonical(state: RunState) -> dict[str, Any]:
    """The folded state without timestamps, ids, or the time-decided grouping of batches."""

    def payload(aid: str) -> str:
        a = state.artifacts[aid]
        return f"{a.type}:{json.dumps(a.payload, sort_keys=True)}"

    arts = Counter(
        (a.type, a.produced_by, json.dumps(a.payload, sort_keys=True))
        for a in state.artifacts.values()
    )
    tasks = Counter(
        (
            t.agent,
            t.status.value,
            t.reason,
            len(t.inputs) if t.agent == "collector" else tuple(payload(i) for i in t.inputs),
            tuple(payload(o) for o in t.outputs),
        )
        for t in state.tasks.values()
    )
    return {
        "artifacts": arts,
        "tasks": tasks,
        "calls": Counter(state.tasks[c.task_id].agent for c in state.calls.values()),
        "waiting": sorted(len(b.members) for b in state.batches.values() if b.members),
        "status": state.finished_status,
    }


def final_state(db: Path) -> tuple[RunState, LogReader]:
    reader = LogReader(db)
    return fold(reader.iter_events(reader.resolve_run("latest"))), reader


def check_log_invariants(reader: LogReader) -> None:
    def dupes(sql: str) -> list[tuple[object, ...]]:
        return reader.query(sql)

    assert not dupes(
        "SELECT json_extract(body, '$.id'), count(*) FROM events WHERE kind='artifact.published' "
        "GROUP BY 1 HAVING count(*) > 1"
    ), "an artifact was published twice"
    assert not dupes(
        "SELECT task_id, count(*) FROM events WHERE kind='task.completed' "
        "GROUP BY 1 HAVING count(*) > 1"
    ), "a task completed twice"
    assert not dupes(
        "SELECT task_id, json_extract(body, '$.call_index'), count(*) FROM events "
        "WHERE kind='model.called' GROUP BY 1, 2 HAVING count(*) > 1"
    ), "a model call was recorded (paid) twice"
    # What lets a compact fold forget a completed task's id (fold.forget_task).
    assert not dupes(
        "SELECT task_id, count(*) FROM events WHERE kind='task.scheduled' "
        "GROUP BY 1 HAVING count(*) > 1"
    ), "a task was scheduled twice"
    assert not dupes(
        "SELECT e.task_id, e.kind FROM events e JOIN events c ON c.task_id = e.task_id "
        "AND c.kind = 'task.completed' AND e.seq > c.seq WHERE e.kind IN ('task.scheduled', "
        "'task.started', 'task.completed', 'task.failed', 'model.called', 'tool.called')"
    ), "an event of a task after its completion"


def committed(db: Path) -> int:
    try:
        with LogReader(db) as reader:
            return reader.last_seq()
    except DatabaseError:
        return 0


def kill_at(db: Path, n_events: int) -> int:
    """Run the program, SIGKILL it once ``n_events`` are committed; returns events at kill."""
    proc = subprocess.Popen(
        [*CLI, "run", str(PROGRAM), "--db", str(db), "-q"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if committed(db) >= n_events:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    return committed(db)


def crash_and_resume(tmp: Path, n_events: int) -> tuple[int, RunState, str]:
    db = tmp / f"kill-{n_events}.db"
    at = kill_at(db, n_events)
    runs = run_cli(["runs", "--db", db, "--json"])
    status = json.loads(runs.stdout)[0]["status"] if runs.returncode == 0 else runs.stderr
    out = run_cli(["resume", "latest", "--db", db, "-q"])
    assert out.returncode == 0, f"kill at {at}: {out.stderr}"
    assert "Traceback" not in out.stderr
    state, reader = final_state(db)
    try:
        check_log_invariants(reader)
    finally:
        reader.close()
    return at, state, str(status)


@pytest.mark.slow
def test_sigkill_at_seeded_points_then_resume(tmp_path: Path) -> None:
    ref_db = tmp_path / "reference.db"
    out = run_cli(["run", PROGRAM, "--db", ref_db, "-q"])
    assert out.returncode == 0, out.stderr
    reference, reader = final_state(ref_db)
    total = reader.last_seq()
    reader.close()
    expected = canonical(reference)
    assert expected["status"] == "completed" and not expected["waiting"]

    # One random kill point in each of KILL_POINTS equal slices of the run.
    rng = random.Random(SEED)
    edges = [2 + (total - 2) * i // KILL_POINTS for i in range(KILL_POINTS + 1)]
    points = sorted({rng.randrange(lo, max(lo + 1, hi)) for lo, hi in itertools.pairwise(edges)})
    assert len(points) >= 20

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda n: crash_and_resume(tmp_path, n), points))

    killed_mid_run = 0
    for at, state, status in results:
        got = canonical(state)
        for key in expected:
            assert got[key] == expected[key], f"kill at {at} events: {key} differs after resume"
        if at < total - 1:
            killed_mid_run += 1
            assert status == "interrupted", f"kill at {at}: runs showed {status}"
            assert state.resumed == 1, f"kill at {at}: the run was not resumed"
    assert killed_mid_run >= 15, "most kill points must land before the run finished"
