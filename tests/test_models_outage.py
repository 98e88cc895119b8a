"""A provider outage mid-run: tasks fail, the run is interrupted (not failed), and
``flock-es resume RUN --retry-failed`` finishes it once the provider is back."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT, cli_env, run_cli

PROGRAM = ROOT / "tests" / "programs" / "swarm_program.py"
KEY = "sk-test-OUTAGE1234567890abcdefg"


def start_server(port: int = 0) -> tuple[subprocess.Popen[str], int]:
    # Two calls in flight at most and 0.5 s each: the burst completes a pair at a time.
    args = [sys.executable, "-m", "tests.openai_server", "--latency", "0.5", "--port", str(port)]
    proc = subprocess.Popen(
        [*args, "--max-inflight", "2", "--retry-after", "0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline().split()[1])


def stop(server: subprocess.Popen[str]) -> None:
    """SIGINT the provider, as a user would stop it; kill it if it has not exited in 30 s.

    The resume it served has returned by then, so nothing the test checks depends on
    how the server exits. In three full gates at load 2-8 one server outlived the 30
    s after its SIGINT (never alone, nor under a CPU load of 5); why was not found,
    and a hung test server must not fail the product's test.
    """
    server.send_signal(signal.SIGINT)
    try:
        server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.communicate()


def rows(db: Path, kind: str) -> list[dict[str, object]]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        found = con.execute("SELECT body FROM events WHERE kind = ? ORDER BY seq", (kind,))
        return [json.loads(r[0]) for r in found.fetchall()]
    except sqlite3.Error:
        return []
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_outage_then_resume_retry_failed_completes_and_replays_identical(tmp_path: Path) -> None:
    server, port = start_server()
    db = tmp_path / "outage.db"
    env = {"OPENAI_API_BASE": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": KEY, "SWARM_N": "6"}
    cmd = [*CLI, "run", str(PROGRAM), "-q"]
    run = subprocess.Popen(
        [*cmd, "-m", "openai/test-model", "--db", str(db)],
        cwd=tmp_path,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(rows(db, "task.completed")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows(db, "task.completed"), "no task finished before the outage"
    finally:
        server.send_signal(signal.SIGKILL)  # the provider goes away mid-run
        server.wait()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, out + err
    assert "--retry-failed" in err and "Traceback" not in err  # flock-es speaks on stderr
    failed = rows(db, "task.failed")
    assert failed and all(f["transient"] for f in failed)
    # Their backoff between attempts is waiting, not the agents' work (the summary's busy).
    assert any(float(f.get("waited_ms", 0.0)) > 0.0 for f in failed), failed  # type: ignore[arg-type]
    assert all(float(f.get("waited_ms", 0.0)) <= float(f["duration_ms"]) for f in failed)  # type: ignore[arg-type]
    assert rows(db, "run.finished")[-1]["status"] == "interrupted"
    done_before = len(rows(db, "task.completed"))

    # A resume while the provider is still down keeps the run interrupted, not failed.
    down = run_cli(["resume", "latest", "--db", db, "--retry-failed", "-q"], env=env)
    assert down.returncode == 1, down.stdout + down.stderr
    assert rows(db, "run.finished")[-1]["status"] == "interrupted"
    plain = run_cli(["resume", "latest", "--db", db], env=env)
    assert plain.returncode == 0 and "--retry-failed" in plain.stdout

    server, _ = start_server(port)  # the provider is back
    try:
        back = run_cli(["resume", "latest", "--db", db, "--retry-failed", "-q"], env=env)
    finally:
        stop(server)
    assert back.returncode == 0, back.stdout + back.stderr
    assert rows(db, "run.finished")[-1]["status"] == "completed"
    completed = rows(db, "task.completed")
    assert len(completed) == 6 and done_before < 6
    # Attempt numbers continue: a retried task's last start is its third attempt or later.
    assert max(int(str(c["attempt"])) for c in completed) >= 3
    assert len({c["task_id"] for c in completed}) == 6  # no task completed twice

    rep = run_cli(["replay", "latest", "--db", db, "--no-timeline"], env=env)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "identical" in rep.stdout
