"""``flock-es fork RUN --at SEQ``: a new live run from the state at SEQ, self-contained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flock_es.log.reader import LogReader
from flock_es.projection.fold import fold
from tests.conftest import EXAMPLES, ROOT, run_cli


@pytest.mark.slow
def test_fork_continues_live_and_records_its_parent(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    assert run_cli(["run", EXAMPLES / "pipeline.py", "--db", db, "-q"]).returncode == 0
    with LogReader(db) as reader:
        parent = reader.runs()[0].run_id
        events = reader.events(parent)
        parent_state = fold(events)
    at = next(e.seq for e in events if e.kind.value == "batch.buffered")
    assert at is not None

    out = run_cli(["fork", parent, "--at", str(at), "--db", db, "-q", "--model", "offline"])
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stderr
    runs = json.loads(run_cli(["runs", "--db", db, "--json"]).stdout)
    child = runs[1]
    assert child["parent_run"] == parent and child["fork_seq"] == at
    assert child["status"] == "completed" and child["tasks"]["pending"] == 0

    with LogReader(db) as reader:
        child_state = fold(reader.iter_events(child["run_id"]))
        # Forks copy task ids: one span per task.started, not one per matching pair of runs.
        spans = reader.query("SELECT count(*) FROM spans")
        started = reader.query("SELECT count(*) FROM events WHERE kind = 'task.started'")
    count = started[0][0]
    assert spans == started and isinstance(count, int) and count > 0
    # Same code, same deterministic model, the parent's id namespace: the same artifacts.
    assert {a.id: a.payload for a in child_state.artifacts.values()} == {
        a.id: a.payload for a in parent_state.artifacts.values()
    }
    assert child_state.tasks_by_status() == parent_state.tasks_by_status()
    # Inherited model calls are served; only the ones after the fork point are new.
    inherited = sum(1 for e in events if e.seq and e.seq <= at and e.kind.value == "model.called")
    assert 0 < inherited < child["model_calls"] == 33

    replay = run_cli(["replay", child["run_id"], "--db", db, "--json", "--no-timeline"])
    assert replay.returncode == 0, replay.stdout
    assert json.loads(replay.stdout)["model_calls"] == 0

    # The child's log stands alone: it travels and replays without its parent.
    file = tmp_path / "child.jsonl"
    assert run_cli(["export", child["run_id"], "--db", db, "-o", file]).returncode == 0
    other = tmp_path / "other.db"
    assert run_cli(["import", file, "--db", other]).returncode == 0
    assert run_cli(["replay", "latest", "--db", other, "--no-timeline"]).returncode == 0


def test_fork_with_changed_code_takes_the_new_branch(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    shutil.copy(ROOT / "tests" / "programs" / "replay_program.py", prog)
    db = tmp_path / "c.db"
    assert run_cli(["run", prog, "--db", db, "-q"], cwd=tmp_path).returncode == 0
    with LogReader(db) as reader:
        parent = reader.runs()[0].run_id
        seeds_unit_end = max(
            e.seq or 0
            for e in reader.events(parent)
            if e.kind.value == "task.scheduled" and e.seq is not None and e.seq < 15
        )
    # Fork right after the seeds were published, with doubling turned into tripling.
    prog.write_text(prog.read_text().replace("i.n * 2", "i.n * 3"))
    out = run_cli(["fork", parent, "--at", "2", "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"forking after seq {seeds_unit_end}" in out.stderr
    with LogReader(db) as reader:
        child = reader.runs()[1].run_id
        state = fold(reader.iter_events(child))
    doubled = sorted(state.artifacts[a].payload["n"] for a in state.by_type["Doubled"])
    assert doubled == [0, 3, 6, 9, 12]
