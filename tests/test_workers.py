"""`flock-es worker` and `flock-es run --no-execute`/`--share`, on both backends.

Real processes all the way: workers and the run are the CLI in subprocesses,
the database is one SQLite file the processes share, or a fresh PostgreSQL
database on $FLOCK_ES_TEST_PG; a crash is a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flock_es.log.backends import open_reader
from tests.conftest import CLI, EXAMPLES, cli_env, run_cli
from tests.pg import pg_admin_url, pg_database

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A log several processes share: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "shared.db")
        return
    with pg_database(pg_admin_url()) as url:
        yield url


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
                    *CLI,
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


def crash_test(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a long test with real SIGKILLs: slow (CI runs it), 300 s at most."""
    marked: Callable[..., None] = pytest.mark.slow(pytest.mark.timeout(300)(test))
    return marked


def fanout(n: int, latency: float) -> tuple[Path, dict[str, str]]:
    """The fan-out program and the environment for ``n`` model tasks of ``latency`` s."""
    return PROGRAMS / "fanout.py", {"FANOUT_N": str(n), "FANOUT_LATENCY": str(latency)}


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


def all_kinds(db: str, kind: str) -> list[dict[str, object]]:
    """Bodies of every run's events of ``kind`` (none while the log does not exist)."""
    try:
        with open_reader(db) as r:
            return [e.body for e in r.events_after(0) if e.kind.value == kind]
    except Exception:
        return []  # the run has not created the log yet


def task_leases(db: str) -> int:
    """How many task leases the shared log holds."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as con:
            row = con.execute("SELECT count(*) FROM task_leases").fetchone()
    else:
        with sqlite3.connect(db) as lite:
            row = lite.execute("SELECT count(*) FROM task_leases").fetchone()
    return int(row[0]) if row else 0


def cli(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The CLI in a subprocess that the test may kill."""
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("program", "n_workers"),
    [
        # All slow (subprocess-heavy: a run, workers, the shared run, a replay); the
        # quick set keeps the worker tests of single processes below.
        pytest.param(PROGRAMS / "tutorial_verbatim.py", 1, marks=pytest.mark.slow),
        pytest.param(EXAMPLES / "news.py", 1, marks=pytest.mark.slow),
        pytest.param(EXAMPLES / "news.py", 3, marks=pytest.mark.slow),
        pytest.param(PROGRAMS / "tutorial_verbatim.py", 3, marks=pytest.mark.slow),
        pytest.param(PROGRAMS / "crash_pipeline.py", 3, marks=pytest.mark.slow),
        pytest.param(PROGRAMS / "batch_timeout.py", 2, marks=pytest.mark.slow),
    ],
)
def test_workers_produce_what_a_local_run_does(
    tmp_path: Path,
    shared_db: str,
    program: Path,
    n_workers: int,
) -> None:
    lite = tmp_path / "local.db"
    model = ["--model", "offline"]  # the tutorial names a real model; workers use the run's
    assert run_cli(["run", program, "--db", lite, "-q", *model], cwd=tmp_path).returncode == 0
    with workers(program, shared_db, n_workers, tmp_path) as procs:
        out = run_cli(
            ["run", program, "--db", shared_db, "--no-execute", "-q", *model], cwd=tmp_path
        )
        assert out.returncode == 0, out.stderr
        assert all(p.poll() is None for p in procs)  # still serving
    assert "completed" in out.stderr
    run = latest(shared_db)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(n_workers)]
    # The workers that served it said so (one may find it only once it has ended).
    assert any(f"joined run {run}: " in log for log in logs), logs
    assert artifact_counts(shared_db, run) == artifact_counts(lite, latest(lite))
    started = kinds(shared_db, run, "task.started")
    assert started and all(str(b.get("worker", "")).count(":") == 2 for b in started)
    done = Counter(b["task_id"] for b in kinds(shared_db, run, "task.completed"))
    assert set(done.values()) == {1}
    replay = run_cli(["replay", run, "--db", shared_db])
    assert replay.returncode == 0 and replay.stdout.strip().endswith("identical"), replay.stdout


@pytest.mark.slow
def test_run_executes_alongside_workers(tmp_path: Path, shared_db: str) -> None:
    program, env = fanout(60, 0.05)
    with workers(program, shared_db, 1, tmp_path, "--concurrency", "4", env=env):
        out = run_cli(["run", program, "--db", shared_db, "--concurrency", "4", "--share"], env=env)
        # No lease outlives its task while the worker lives: one claimed from a stale
        # view (the run process had ended the task) was kept and renewed for good, so a
        # ``resume --retry-failed`` that reopened the task waited on it forever. (A
        # stale claim may be on its way back as the run ends: a few ms.)
        deadline = time.monotonic() + 10
        while task_leases(shared_db) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert task_leases(shared_db) == 0
    assert out.returncode == 0, out.stderr
    assert "60 done, 0 failed" in out.stderr
    run = latest(shared_db)
    by_worker = Counter(str(b["worker"]) for b in kinds(shared_db, run, "task.started"))
    assert sum(by_worker.values()) == 60


def test_worker_refuses_bad_options(tmp_path: Path) -> None:
    out = run_cli(["worker", EXAMPLES / "news.py", "--db", tmp_path / "x.db", "--concurrency", "0"])
    assert out.returncode == 2 and "--concurrency must be at least 1" in out.stderr


def paid_calls(db: str) -> set[tuple[str, int]]:
    """Every recorded model call's key (task id, call index)."""
    return {(str(b["task_id"]), int(str(b["call_index"]))) for b in all_kinds(db, "model.called")}


def assert_exactly_once(db: str, n_tasks: int, paid_before: set[tuple[str, int]]) -> str:
    """The latest run finished ``n_tasks`` tasks once each, paid each model call once
    (every one recorded before a kill included), and replays identical; its id."""
    run_id = latest(db)
    done = Counter(str(b["task_id"]) for b in kinds(db, run_id, "task.completed"))
    assert len(done) == n_tasks and set(done.values()) == {1}  # no task completed twice
    calls = Counter(
        (str(b["task_id"]), int(str(b["call_index"]))) for b in kinds(db, run_id, "model.called")
    )
    assert set(calls.values()) == {1}  # no call paid twice, before the kill or after
    assert paid_before <= set(calls)
    replay = run_cli(["replay", run_id, "--db", db], timeout=240)
    assert replay.returncode == 0 and replay.stdout.strip().endswith("identical"), replay.stdout
    return run_id


def open_started(db: str, pid: int) -> int:
    """Tasks that worker process ``pid`` durably started and nobody finished yet."""
    # Starts first, then completions: read the other way round, a task that started
    # and finished between the two reads counts as open (a flake on a loaded machine:
    # the victim was killed with nothing in flight, so nothing was taken over).
    started = all_kinds(db, "task.started")
    done = {b["task_id"] for b in all_kinds(db, "task.completed")}
    return sum(1 for b in started if f":{pid}:" in str(b["worker"]) and b["task_id"] not in done)


@crash_test
def test_a_killed_worker_s_tasks_are_taken_over_without_repaying(
    tmp_path: Path, shared_db: str
) -> None:
    # Tasks of 0.5 s: between reading that the victim has a task open (two reads of
    # every start and completion) and the kill, a busy machine took long enough for
    # 0.2 s tasks to finish, leaving nothing to take over (CI, 2 pytest workers).
    program, env = fanout(500, 0.5)
    args = ("--concurrency", "4", "--lease", "3")
    with workers(program, shared_db, 3, tmp_path, *args, env=env) as procs:
        run = cli("run", program, "--db", shared_db, "--no-execute", "-q", env=env)
        victim = procs[0]
        deadline = time.time() + 120
        paid_before: set[tuple[str, int]] = set()
        while time.time() < deadline:
            time.sleep(0.2)
            if len(paid_calls(shared_db)) < 100:
                continue
            # Stopped first, so what it has open stays open while the log is read (read
            # then killed, a loaded CI machine let its open tasks finish in between, and
            # nothing was left to take over); its commits already sent land meanwhile.
            os.kill(victim.pid, signal.SIGSTOP)
            time.sleep(0.1)
            if open_started(shared_db, victim.pid) > 0:
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                paid_before = paid_calls(shared_db)  # the victim's calls included
                break
            os.kill(victim.pid, signal.SIGCONT)
        assert paid_before, "the run ended before a worker could be killed"
        _out, err = run.communicate(timeout=240)
    assert run.returncode == 0, err
    assert "500 done, 0 failed" in err
    run_id = assert_exactly_once(shared_db, 500, paid_before)
    taken = [b for b in kinds(shared_db, run_id, "task.started") if int(str(b["attempt"])) > 1]
    assert taken, "the victim's started tasks were re-run by the others"


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 60) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` (the test fails if it never is)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            proc.kill()
            proc.wait()
            return
        time.sleep(0.05)
    pytest.fail("the process ended (or took too long) before it could be killed")


@pytest.mark.slow
def test_resume_after_a_kill(tmp_path: Path, shared_db: str) -> None:
    program, env = fanout(40, 0.2)
    run = cli("run", program, "--db", shared_db, "-q", "--concurrency", "4", "--share", env=env)
    kill_when(run, lambda: len(paid_calls(shared_db)) >= 8)
    before = paid_calls(shared_db)
    assert before and len(before) < 40
    out = run_cli(["resume", "latest", "--db", shared_db, "-q"], env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "40 done, 0 failed" in out.stderr
    assert_exactly_once(shared_db, 40, before)


@pytest.mark.slow
def test_timers_fire_on_workers_when_the_run_process_is_gone(
    tmp_path: Path, shared_db: str
) -> None:
    """A join window and an AfterVisibility release, armed by a `run --no-execute`
    that is then SIGKILLed: the workers record each outcome exactly once."""
    program = PROGRAMS / "pending_timers.py"
    with workers(program, shared_db, 2, tmp_path):
        run = cli("run", program, "--db", shared_db, "--no-execute", "-q")
        # Both timers armed (the order's join window, the memo's release), then the kill.
        kill_when(run, lambda: len(all_kinds(shared_db, "artifact.published")) >= 2)
        deadline = time.time() + 60
        while time.time() < deadline:
            if all_kinds(shared_db, "join.expired") and all_kinds(shared_db, "task.completed"):
                break
            time.sleep(0.1)
        time.sleep(1.0)  # time for a second (wrong) expiry or release to show up
    assert len(all_kinds(shared_db, "join.expired")) == 1
    assert len(all_kinds(shared_db, "artifact.released")) == 1
    seen = [b for b in all_kinds(shared_db, "artifact.published") if b["type"] == "Seen"]
    assert [b["payload"] for b in seen] == [{"what": "embargoed"}]
    out = run_cli(["resume", "latest", "--db", shared_db, "-q"])  # closes the orphaned run
    assert out.returncode == 0, out.stderr
    replay = run_cli(["replay", latest(shared_db), "--db", shared_db])
    assert replay.returncode == 0 and replay.stdout.strip().endswith("identical"), replay.stdout


@crash_test
def test_resume_takes_part_while_workers_run_and_finishes_after_they_die(
    tmp_path: Path, shared_db: str
) -> None:
    program, env = fanout(120, 0.3)
    with workers(
        program, shared_db, 2, tmp_path, "--concurrency", "2", "--lease", "2", env=env
    ) as procs:
        run = cli("run", program, "--db", shared_db, "--no-execute", "-q", env=env)
        kill_when(run, lambda: len(paid_calls(shared_db)) >= 10)
        resumed = cli("resume", "latest", "--db", shared_db, "-q", env=env)
        kill_when(procs[0], lambda: len(paid_calls(shared_db)) >= 40)
        kill_when(procs[1], lambda: len(paid_calls(shared_db)) >= 50)
        before = paid_calls(shared_db)
        _out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    assert "120 done, 0 failed" in err
    assert_exactly_once(shared_db, 120, before)


@crash_test
def test_a_worker_whose_lease_was_taken_over_drops_its_outcome(
    tmp_path: Path, shared_db: str
) -> None:
    """SIGSTOP a worker mid-task until its leases expire and another worker has
    finished its tasks; after SIGCONT its commits find the leases lost."""
    program, env = fanout(6, 1.5)
    with workers(
        program, shared_db, 1, tmp_path, "--concurrency", "6", "--lease", "1", env=env
    ) as first:
        run = cli("run", program, "--db", shared_db, "--no-execute", "-q", env=env)
        deadline = time.time() + 60
        while time.time() < deadline and len(all_kinds(shared_db, "task.started")) < 6:
            time.sleep(0.05)
        os.kill(first[0].pid, signal.SIGSTOP)
        (tmp_path / "second").mkdir()
        try:
            with workers(program, shared_db, 1, tmp_path / "second", env=env):
                _out, err = run.communicate(timeout=120)
        finally:
            os.kill(first[0].pid, signal.SIGCONT)
        time.sleep(3.0)  # its model answers arrive; it tries to commit them
    assert run.returncode == 0, err
    run_id = latest(shared_db)
    done = Counter(str(b["task_id"]) for b in kinds(shared_db, run_id, "task.completed"))
    assert len(done) == 6 and set(done.values()) == {1}
    calls = Counter(str(b["task_id"]) for b in kinds(shared_db, run_id, "model.called"))
    assert set(calls.values()) == {1}
    log = (tmp_path / "worker0.log").read_text()
    assert "was taken over by another worker" in log


@pytest.mark.slow
def test_a_lone_worker_never_says_its_own_committed_tasks_were_taken_over(
    tmp_path: Path,
) -> None:
    """A commit turn that began right after one that ended tasks, before their
    executions let go, found their leases gone (that commit dropped them) and took
    them for taken over: a lone SQLite worker said "its outcome here was dropped"
    of tasks it had committed (16 of 300 at --concurrency 32, before the fix)."""
    program, env = fanout(300, 0.2)
    db = str(tmp_path / "shared.db")
    with workers(program, db, 1, tmp_path, "--concurrency", "32", env=env):
        out = run_cli(["run", program, "--db", db, "--no-execute", "-q"], env=env)
    assert out.returncode == 0, out.stderr
    assert "300 done, 0 failed" in out.stderr
    assert "taken over" not in (tmp_path / "worker0.log").read_text()
    done = Counter(str(b["task_id"]) for b in kinds(db, latest(db), "task.completed"))
    assert len(done) == 300 and set(done.values()) == {1}


def test_a_worker_says_so_when_a_run_is_of_another_version_of_its_program(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "v.db")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    text = (EXAMPLES / "news.py").read_text()
    (tmp_path / "a" / "news.py").write_text(text)
    (tmp_path / "b" / "news.py").write_text(text + "\n# edited on this machine\n")
    run = cli("run", tmp_path / "a" / "news.py", "--db", db, "--no-execute", "-q")
    try:
        with workers(tmp_path / "b" / "news.py", db, 1, tmp_path):
            deadline = time.time() + 60
            log = tmp_path / "worker0.log"
            while time.time() < deadline and "another version" not in log.read_text():
                time.sleep(0.1)
    finally:
        run.kill()
        run.wait()
    assert "not serving run r-" in log.read_text()
    assert "it runs another version of news.py" in log.read_text()
