"""``run_until_idle(timeout=)`` leaves a waiting run resumable, and the progress
line says what an idle run is waiting for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flock_es import Flock
from flock_es.cli.waiting import in_words, waiting_for
from flock_es.log import LogReader
from flock_es.projection import fold
from flock_es.projection.state import BatchView, RunState
from tests.conftest import ROOT, run_cli

PROGRAM = ROOT / "tests" / "programs" / "stop_waiting.py"


def digests(db: Path) -> list[int]:
    with LogReader(db) as log:
        state = fold(log.events(log.resolve_run("latest")))
    return [int(a.payload["count"]) for a in state.artifacts.values() if a.type == "Digest"]


@pytest.mark.slow
def test_a_program_that_stops_waiting_leaves_the_batch_for_resume(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    out = run_cli(["run", PROGRAM, "--db", db], cwd=tmp_path, env={"BATCH_TIMEOUT": "3"})
    assert "idle=False" in out.stdout, out.stderr
    assert "interrupted" in out.stderr and "flock-es resume r-" in out.stderr
    assert "batch for editor: 7/8 artifacts" in out.stderr
    runs = json.loads(run_cli(["runs", "--db", db, "--json"]).stdout)
    assert runs[0]["status"] == "interrupted"
    assert digests(db) == []
    # the buffer and its deadline are in the log: resume re-arms the timer and flushes
    again = run_cli(["resume", "latest", "--db", db, "-q"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "completed" in again.stderr
    assert digests(db) == [7]


@pytest.mark.slow
def test_waiting_without_a_timeout_shows_what_for(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    env = {"BATCH_TIMEOUT": "2.5", "STOP_AFTER": "0"}
    out = run_cli(["run", PROGRAM, "--db", db], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    lines = [x for x in out.stderr.splitlines() if "waiting: " in x]
    assert lines and "editor batch 7/8, flush in " in lines[0], out.stderr
    assert digests(db) == [7]


async def test_run_until_idle_returns_true_when_idle(tmp_path: Path) -> None:
    flock = Flock(db=tmp_path / "i.db")
    assert await flock.run_until_idle(timeout=5) is True
    assert await flock.close() == "completed"


def test_waiting_for_lists_timers_soonest_first() -> None:
    s = RunState(run_id="r")
    s.batches[("editor", 0)] = BatchView("editor", 0, [f"a{i}" for i in range(7)], 0.0, 124.2, 8)
    s.batches[("slow", 0)] = BatchView("slow", 0, ["x"], 0.0, 400.0, None)
    s.batches[("sized", 0)] = BatchView("sized", 0, ["y"], 0.0, None, 5)  # waits for ever
    s.unreleased = {"a": 3700.0, "b": 9000.0}
    assert waiting_for(s, now=100.0) == (
        "editor batch 7/8, flush in 24 s · slow batch 1, flush in 5 min · "
        "2 embargoed artifacts, next in 1 h 0 min"
    )
    assert waiting_for(RunState(run_id="r"), now=0.0) == ""


@pytest.mark.parametrize(
    ("seconds", "words"), [(0.4, "0 s"), (24.4, "24 s"), (290, "4 min 50 s"), (7500, "2 h 5 min")]
)
def test_durations_in_words(seconds: float, words: str) -> None:
    assert in_words(seconds) == words
