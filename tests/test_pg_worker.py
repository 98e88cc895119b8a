"""`flock-es worker` and `flock-es run --no-execute` on PostgreSQL.

Real processes all the way: workers and the run are the CLI in subprocesses,
the database is a fresh one on $FLOCK_ES_TEST_PG, a crash is a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flock_es.log.backends import open_reader
from tests.conftest import EXAMPLES, cli_env, run_cli
from tests.pg import pg_url  # noqa: F401  (fixture)

PROGRAMS = Path(__file__).parent / "programs"


@contextmanager
def workers(
    program: Path, url: str, n: int, tmp: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[list[subprocess.Popen[str]]]:
    """``n`` worker processes; stopped with SIGTERM (by pid) at the end."""
    procs = []
    for i in range(n):
        out = (tmp / f"worker{i}.log").open("w")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flock_es.cli.app",
                    "worker",
                    str(program),
                    "--db",
                    url,
                    *list(args),
                ],
                env=cli_env(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                stdin=subprocess.DEVNULL,
            )
        )
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def latest(db: str | Path) -> str:
    return str(json.loads(run_cli(["runs", "--db", db, "--json"]).stdout)[-1]["run_id"])


def artifact_counts(db: str | Path, run: str) -> dict[str, int]:
    with open_reader(db) as r:
        rows = r.query(
            "SELECT type, count(*) FROM artifacts WHERE run_id = ? GROUP BY type", (run,)
        )
    return {str(t): int(str(n)) for t, n in rows}


def kinds(db: str, run: str, kind: str) -> list[dict[str, object]]:
    with open_reader(db) as r:
        return [e.body for e in r.events(run) if e.kind.value == kind]


def call_keys(bodies: list[dict[str, object]]) -> list[tuple[str, int]]:
    """(task id, call index) of each ``model.called`` body."""
    return [(str(b["task_id"]), int(str(b["call_index"]))) for b in bodies]


def paid_calls(db: str) -> set[tuple[str, int]]:
    """The model calls recorded so far in ``db``: (task id, call index)."""
    with open_reader(db) as r:
        rows = r.query(
            "SELECT body->>'task_id', (body->>'call_index')::int FROM events"
            " WHERE kind = 'model.called'"
        )
    return {(str(t), int(str(i))) for t, i in rows}


@pytest.mark.parametrize(
    ("program", "n_workers"),
    [
        (EXAMPLES / "news.py", 1),
        (EXAMPLES / "news.py", 3),
        (PROGRAMS / "tutorial_verbatim.py", 1),
        (PROGRAMS / "tutorial_verbatim.py", 3),
        (PROGRAMS / "crash_pipeline.py", 3),
        (PROGRAMS / "batch_timeout.py", 2),
    ],
)
def test_workers_produce_what_a_local_run_does(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    program: Path,
    n_workers: int,
) -> None:
    lite = tmp_path / "local.db"
    model = ["--model", "offline"]  # the tutorial names a real model; workers use the run's
    assert run_cli(["run", program, "--db", lite, "-q", *model], cwd=tmp_path).returncode == 0
    with workers(program, pg_url, n_workers, tmp_path) as procs:
        out = run_cli(["run", program, "--db", pg_url, "--no-execute", "-q", *model], cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert all(p.poll() is None for p in procs)  # still serving
    assert "completed" in out.stderr
    run = latest(pg_url)
    assert artifact_counts(pg_url, run) == artifact_counts(lite, latest(lite))
    started = kinds(pg_url, run, "task.started")
    assert started and all(str(b.get("worker", "")).count(":") == 2 for b in started)
    done = Counter(b["task_id"] for b in kinds(pg_url, run, "task.completed"))
    assert set(done.values()) == {1}
    replay = run_cli(["replay", run, "--db", pg_url])
    assert replay.returncode == 0 and replay.stdout.strip().endswith("identical"), replay.stdout


def test_run_executes_alongside_workers(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    env = {"FANOUT_N": "60", "FANOUT_LATENCY": "0.05"}
    program = PROGRAMS / "fanout.py"
    with workers(program, pg_url, 1, tmp_path, "--concurrency", "4", env=env):
        out = run_cli(["run", program, "--db", pg_url, "--concurrency", "4"], env=env)
    assert out.returncode == 0, out.stderr
    assert "60 done, 0 failed" in out.stderr
    run = latest(pg_url)
    by_worker = Counter(str(b["worker"]) for b in kinds(pg_url, run, "task.started"))
    assert sum(by_worker.values()) == 60


def test_worker_refuses_sqlite_and_bad_options(tmp_path: Path) -> None:
    out = run_cli(["worker", EXAMPLES / "news.py", "--db", tmp_path / "x.db"])
    assert out.returncode == 2 and "needs a PostgreSQL database" in out.stderr
    out = run_cli(["run", EXAMPLES / "news.py", "--db", tmp_path / "x.db", "--no-execute"])
    assert out.returncode == 2 and "--no-execute needs a PostgreSQL database" in out.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_worker_s_tasks_are_taken_over_without_repaying(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    env = {"FANOUT_N": "500", "FANOUT_LATENCY": "0.2"}
    program = PROGRAMS / "fanout.py"
    args = ("--concurrency", "4", "--lease", "3")
    with workers(program, pg_url, 3, tmp_path, *args, env=env) as procs:
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flock_es.cli.app",
                "run",
                str(program),
                "--db",
                pg_url,
                "--no-execute",
                "-q",
            ],
            env=cli_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        victim = procs[0]
        deadline = time.time() + 120
        paid_before: set[tuple[str, int]] = set()
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                with open_reader(pg_url) as r:
                    paid = r.query("SELECT count(*) FROM events WHERE kind = 'model.called'")
                    # Tasks the victim has started (durably) and not finished: to be taken over.
                    held = r.query(
                        "SELECT count(*) FROM events s WHERE s.kind = 'task.started'"
                        " AND s.body->>'worker' LIKE ? AND NOT EXISTS (SELECT 1 FROM events c"
                        "  WHERE c.kind = 'task.completed' AND c.task_id = s.task_id)",
                        (f"%:{victim.pid}:%",),
                    )
            except Exception:
                continue  # the run has not created the schema yet
            if int(str(paid[0][0])) >= 100 and int(str(held[0][0])) > 0:
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                # Everything recorded before the kill (the victim's calls included).
                paid_before = paid_calls(pg_url)
                break
        assert paid_before, "the run ended before a worker could be killed"
        _out, err = run.communicate(timeout=240)
    assert run.returncode == 0, err
    assert "500 done, 0 failed" in err
    run_id = latest(pg_url)
    done = Counter(str(b["task_id"]) for b in kinds(pg_url, run_id, "task.completed"))
    assert len(done) == 500 and set(done.values()) == {1}  # no task completed twice
    calls = Counter(call_keys(kinds(pg_url, run_id, "model.called")))
    assert set(calls.values()) == {1}  # no call paid twice, before the kill or after
    assert paid_before <= set(calls)
    taken = [b for b in kinds(pg_url, run_id, "task.started") if int(str(b["attempt"])) > 1]
    assert taken, "the victim's started tasks were re-run by the others"
    replay = run_cli(["replay", run_id, "--db", pg_url], timeout=240)
    assert replay.returncode == 0 and replay.stdout.strip().endswith("identical"), replay.stdout


def test_resume_after_a_kill_on_postgres(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    env = {"FANOUT_N": "40", "FANOUT_LATENCY": "0.2"}
    program = PROGRAMS / "fanout.py"
    run = subprocess.Popen(
        [
            *[sys.executable, "-m", "flock_es.cli.app"],
            "run",
            str(program),
            "--db",
            pg_url,
            "-q",
            "--concurrency",
            "4",
        ],
        env=cli_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    before: set[tuple[str, int]] = set()
    while time.time() < deadline and run.poll() is None:
        time.sleep(0.1)
        try:
            paid = paid_calls(pg_url)
        except Exception:
            continue
        if len(paid) >= 8:
            run.kill()
            run.wait()
            before = paid_calls(pg_url)
            break
    assert before and len(before) < 40
    out = run_cli(["resume", "latest", "--db", pg_url, "-q"], env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "40 done, 0 failed" in out.stderr
    run_id = latest(pg_url)
    calls = Counter(call_keys(kinds(pg_url, run_id, "model.called")))
    assert len(calls) == 40 and set(calls.values()) == {1} and before <= set(calls)
    replay = run_cli(["replay", run_id, "--db", pg_url])
    assert replay.returncode == 0 and replay.stdout.strip().endswith("identical"), replay.stdout
