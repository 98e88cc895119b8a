"""A run on PostgreSQL that loses its server once ``main()`` has published its seeds
goes on by itself once the server is back (``flock_es.cli.run_outage``): the real
CLI in a subprocess, the real server, its connections ended (a failover) or the
server out of reach behind a proxy. The policy alone, with stand-in attempts, is at
the end."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flock_es.cli import run_outage, worker_loop
from flock_es.errors import DatabaseDamagedError, DatabaseError, RunLostDatabase
from flock_es.log.backends import open_reader
from tests.conftest import run_cli, start_cli
from tests.pg import pg_url  # noqa: F401  (fixture)
from tests.pg_faults import (
    AGENTS,
    Proxy,
    artifacts,
    cut_connections,
    cut_mid_run,
    done_tasks,
    latest_run,
    proxied,
    wait_done,
)

# 60 seeds at once: 240 tasks of 0.3 s, 16 at a time (some 5 s), which the CLI waits for.
WAITS = (
    AGENTS
    + """
async def main():
    await flock.publish_many([Item(n=i) for i in range(60)])
"""
)
# The same, waiting in main() and printing once done, as the tutorial's main() does.
PRINTS = (
    AGENTS
    + """
async def main():
    await flock.publish_many([Item(n=i) for i in range(60)])
    await flock.run_until_idle()
    print("all done")
"""
)


def _completed_once(db: str, run: str) -> None:
    """Every task of ``run`` completed, each once; the run recorded completed."""
    with open_reader(db) as r:
        rows = r.query(
            "SELECT count(*), count(DISTINCT task_id) FROM events "
            "WHERE run_id = ? AND kind = 'task.completed'",
            (run,),
        )
        finished = r.query(
            "SELECT count(*) FROM events WHERE run_id = ? AND kind = 'run.finished'", (run,)
        )
    (completed, distinct), ((ends,),) = rows[0], finished
    assert completed == distinct == 240, rows
    assert ends == 1, finished
    assert artifacts(db, run) == {"Item": 60, "Out": 240}


def _args(tmp_path: Path, url: str, *extra: str) -> list[str]:
    """``run`` of ``WAITS`` (written in ``tmp_path``) on ``url``, quiet."""
    prog = tmp_path / "waits.py"
    prog.write_text(WAITS)
    return ["run", str(prog), "--db", url, "-q", *extra]


def _start(tmp_path: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    return start_cli(_args(tmp_path, url, *extra), tmp_path)


@pytest.mark.slow
def test_a_run_whose_connections_are_cut_as_it_waits_goes_on(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """The server ends every connection (a failover) once the seeds are published: the
    run says so, connects again, resumes itself and ends completed, exit 0, every task
    done once, with no resume typed and nothing on the program's stdout."""
    run, out, err = cut_mid_run(_args(tmp_path, pg_url), pg_url, tmp_path)
    assert run.returncode == 0, err
    assert out == "" and "Traceback" not in err, err
    lines = err.strip().splitlines()
    lost = [line for line in lines if " lost the database: " in line]
    assert len(lost) == 1 and lost[0].startswith("flock-es: run r-"), err
    assert "connecting again for up to 300 s" in lost[0], err
    assert any(" connected again to postgresql://" in line for line in lines), err
    assert any(line.endswith("  completed") for line in lines), err  # the summary
    _completed_once(pg_url, latest_run(pg_url))


@pytest.mark.slow
def test_a_main_cut_short_while_it_waits_is_said_and_fails_the_process(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """main() waits in run_until_idle() and prints once done: the cut ends that wait, so
    its print never runs. The run is resumed and completes, and the process says that
    main() did not run to its end, with exit 1, not a 0 with the program's output cut."""
    prog = tmp_path / "prints.py"
    prog.write_text(PRINTS)
    args = ["run", str(prog), "--db", pg_url, "-q"]
    run, out, err = cut_mid_run(args, pg_url, tmp_path)
    assert run.returncode == 1 and "all done" not in out and "Traceback" not in err, err
    assert err.count(" lost the database: ") == 1 and "  completed" in err, err
    last = err.strip().splitlines()[-1]
    assert "main() did not run to its end" in last and "`flock-es show r-" in last, err
    _completed_once(pg_url, latest_run(pg_url))


@pytest.mark.slow
def test_a_resume_whose_connections_are_cut_goes_on(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """``flock-es resume`` rides a failover out as ``run`` does: a run killed (SIGKILL)
    midway, its resume cut in turn, ends completed, every task done once."""
    run = _start(tmp_path, pg_url)
    try:
        wait_done(pg_url, 8)
        run.kill()
        run.communicate(timeout=30)
    finally:
        run.kill()
    done_before = done_tasks(pg_url)
    resume = start_cli(["resume", "latest", "--db", pg_url, "-q"], tmp_path)
    try:
        wait_done(pg_url, done_before + 8)
        cut_connections(pg_url)
        _, err = resume.communicate(timeout=120)
    finally:
        resume.kill()
    assert resume.returncode == 0, err
    assert "Traceback" not in err and err.count(" lost the database: ") == 1, err
    _completed_once(pg_url, latest_run(pg_url))


@pytest.mark.slow
def test_a_run_waits_for_a_server_that_comes_back(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """The server is out of reach for 3 s (refused meanwhile): the run tries again and
    ends completed once it is back on the same address."""
    with proxied(pg_url) as (url, proxy):
        revived: list[Proxy] = []
        run = _start(tmp_path, url)
        try:
            wait_done(pg_url, 8)
            proxy.down()
            time.sleep(3)
            revived.append(Proxy(*proxy.target, listen=proxy.port))
            _, err = run.communicate(timeout=120)
        finally:
            run.kill()
            for p in revived:
                p.down()
    assert run.returncode == 0, err
    assert "Traceback" not in err and err.count(" lost the database: ") == 1, err
    _completed_once(pg_url, latest_run(pg_url))


@pytest.mark.slow
def test_a_run_gives_up_after_reconnect_for_and_resume_finishes(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """The server stays away: after --reconnect-for seconds the run stops, exit 2, its
    last line naming the run and how to finish it; ``resume`` then does."""
    with proxied(pg_url) as (url, proxy):
        run = _start(tmp_path, url, "--reconnect-for", "2")
        try:
            wait_done(pg_url, 8)
            proxy.down()
            _, err = run.communicate(timeout=120)
        finally:
            run.kill()
    assert run.returncode == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and " lost the database: " in lines[0], err
    assert lines[1].startswith("flock-es: error: cannot ") and "(no connection for " in lines[1]
    assert "once the database is back, `flock-es resume r-" in lines[1], err
    done = run_cli(["resume", "latest", "--db", pg_url, "-q"], cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    _completed_once(pg_url, latest_run(pg_url))


@pytest.mark.slow
def test_a_run_stopped_while_it_waits_for_the_server_says_how_to_finish(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """SIGTERM while the run waits for a server that stays away: exit 130 at once, its
    last line naming the run and the resume that finishes it, no traceback."""
    with proxied(pg_url) as (url, proxy):
        run = _start(tmp_path, url)
        try:
            wait_done(pg_url, 8)
            proxy.down()
            deadline = time.monotonic() + 60
            while run.stderr is not None and time.monotonic() < deadline:
                line = run.stderr.readline()  # the loss is said after the pool's wait
                if " lost the database: " in line or not line:
                    break
            run.terminate()
            _, err = run.communicate(timeout=30)
        finally:
            run.kill()
    assert run.returncode == 130 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and " stopped while it waited for the database: " in lines[0], err
    assert "`flock-es resume r-" in lines[0], err


@pytest.mark.slow
def test_a_run_told_not_to_reconnect_stops_in_one_line(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    run, _, err = cut_mid_run(_args(tmp_path, pg_url, "--reconnect-for", "0"), pg_url, tmp_path)
    assert run.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "once the database is back, `flock-es resume r-" in lines[0]


def test_reconnect_for_must_not_be_negative(tmp_path: Path) -> None:
    prog = tmp_path / "waits.py"
    prog.write_text(WAITS)
    for cmd in (["run", str(prog)], ["resume", "latest"]):
        out = run_cli([*cmd, "--db", str(tmp_path / "x.db"), "--reconnect-for", "-1"])
        assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
        assert "--reconnect-for must not be negative" in out.stderr, out.stderr


# --- the policy, with stand-in attempts ------------------------------------------


def _lost(seeding: bool = False) -> RunLostDatabase:
    return RunLostDatabase("lost; resume it", "r-1", "cannot write to DB: gone", seeding)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_loop, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(worker_loop, "RETRY_MAX", 0.02)


def test_a_lost_run_goes_on_once_an_attempt_connects(
    quick: None, capsys: pytest.CaptureFixture[str]
) -> None:
    tries: list[str] = []

    def first() -> str:
        raise _lost()

    def again(found: Callable[[], None]) -> str:
        tries.append("again")
        if len(tries) < 3:
            raise DatabaseError("cannot connect to postgresql://db: refused")
        found()
        return "done"

    assert run_outage.ride_out(first, again, "r-1", "postgresql://db", 5.0) == "done"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(tries) == 3
    assert len(err) == 2 and "run r-1 lost the database: cannot write" in err[0], err
    assert "run r-1 connected again to postgresql://db after " in err[1], err


def test_a_run_that_lost_its_seeds_or_is_told_not_to_wait_stops(quick: None) -> None:
    def again(found: Callable[[], None]) -> str:
        raise AssertionError("not to be tried")

    def seeding() -> str:
        raise _lost(seeding=True)

    def waiting() -> str:
        raise _lost()

    with pytest.raises(RunLostDatabase):
        run_outage.ride_out(seeding, again, "r-1", "db", 5.0)
    with pytest.raises(RunLostDatabase):
        run_outage.ride_out(waiting, again, "r-1", "db", 0.0)


def test_a_damaged_database_or_a_first_failure_is_not_retried(quick: None) -> None:
    def first() -> str:
        raise _lost()

    def damaged(found: Callable[[], None]) -> str:
        raise DatabaseDamagedError("x.db is damaged")

    def refused() -> str:
        raise DatabaseError("cannot connect to postgresql://db: refused")

    with pytest.raises(DatabaseDamagedError):
        run_outage.ride_out(first, damaged, "r-1", "db", 5.0)
    with pytest.raises(DatabaseError, match="refused"):  # a mistyped URL: at once
        run_outage.ride_out(refused, damaged, "r-1", "db", 5.0)


def test_a_run_gives_up_once_the_outage_lasted_reconnect_for(quick: None) -> None:
    def first() -> str:
        raise _lost()

    def again(found: Callable[[], None]) -> str:
        raise DatabaseError("cannot connect to postgresql://db: refused")

    t0 = time.monotonic()
    with pytest.raises(DatabaseError, match=r"no connection for 0 s\); run r-1 stopped"):
        run_outage.ride_out(first, again, "r-1", "db", 0.2)
    assert time.monotonic() - t0 < 5
