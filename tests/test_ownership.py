"""One owner per run (issue 10): concurrent `resume`s of a killed run, through the CLI.

A run is SIGKILLed with work pending; then four `flock-es resume` start at the
same moment. Exactly one claims the run's lease and finishes it; the others
exit 2 with one line naming the owner. No task completes twice, no model call
is paid twice, and replay says identical.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from flock_es.log.reader import LogReader
from tests.conftest import CLI, cli_env, kill_cli_when, run_cli
from tests.test_crash import PROGRAM, check_log_invariants, committed


def kill_with_work_pending(db: Path, n_events: int = 12) -> None:
    args = ["run", PROGRAM, "--db", db, "-q"]
    kill_cli_when(args, lambda: committed(db) >= n_events, env={"CRASH_LATENCY": "0.5"})


def resume_four_at_once(db: Path) -> list[subprocess.CompletedProcess[str]]:
    # A slow model keeps the winner busy while the others start and try to claim.
    cmd = [*CLI, "resume", "latest", "--db", str(db), "-q"]
    procs = [
        subprocess.Popen(
            cmd,
            env=cli_env({"CRASH_LATENCY": "3"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(4)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def one_round(db: Path) -> None:
    kill_with_work_pending(db)
    with LogReader(db) as log:
        run_id = log.resolve_run("latest")
        resumed_before = log.query("SELECT count(*) FROM events WHERE kind='run.resumed'")[0][0]
        assert isinstance(resumed_before, int)
    results = resume_four_at_once(db)
    winners = [r for r in results if r.returncode == 0]
    losers = [r for r in results if r.returncode != 0]
    assert len(winners) == 1, [(r.returncode, r.stderr) for r in results]
    for r in losers:
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith(f"flock-es: error: run {run_id} is owned by pid ")
        assert " since " in lines[0]
    with LogReader(db) as log:
        resumed = log.query("SELECT count(*) FROM events WHERE kind='run.resumed'")[0][0]
        assert resumed == resumed_before + 1
        assert log.owner(run_id) is None  # released at the end
        check_log_invariants(log)
    replay = run_cli(["replay", run_id, "--db", db, "--no-timeline"], timeout=120)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert replay.stdout.strip().endswith("identical")


@pytest.mark.slow
def test_four_concurrent_resumes_one_owner(tmp_path: Path) -> None:
    one_round(tmp_path / "own.db")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_four_concurrent_resumes_ten_times(tmp_path: Path) -> None:
    for i in range(10):
        one_round(tmp_path / f"own-{i}.db")


@pytest.mark.slow
def test_a_live_run_cannot_be_resumed_and_force_takes_it(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    proc = subprocess.Popen(
        [*CLI, "run", str(PROGRAM), "--db", str(db), "-q"],
        env=cli_env({"CRASH_LATENCY": "5"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while committed(db) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        out = run_cli(["resume", "latest", "--db", db, "-q"])
        assert out.returncode == 2
        assert f"is owned by pid {proc.pid} on " in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        # --force takes the lease; the fenced writer of the first process then stops
        forced = subprocess.Popen(
            [*CLI, "resume", "latest", "--db", str(db), "-q", "--force"],
            env=cli_env({"CRASH_LATENCY": "0.01"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        _, ferr = forced.communicate(timeout=120)
        assert forced.returncode == 0, ferr
        _, err = proc.communicate(timeout=120)
        assert proc.returncode != 0
        assert "taken over by another process" in err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with LogReader(db) as r:
        check_log_invariants(r)
