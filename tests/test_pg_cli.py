"""The CLI against PostgreSQL: run, runs, show, replay, fork, export, import, migrate.

Each test gets a database of its own on $FLOCK_ES_TEST_PG (see tests/pg.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flock_es.log.backends import open_reader
from tests.conftest import EXAMPLES, run_cli, start_cli
from tests.pg import pg_url  # noqa: F401  (fixture)
from tests.pg_faults import (
    AGENTS,
    Proxy,
    artifacts,
    cut_connections,
    cut_mid_run,
    latest_run,
    proxied,
    wait_done,
)


@pytest.mark.parametrize(
    "scheme", ["mysql", *(pytest.param(s, marks=pytest.mark.slow) for s in ("http", "redis"))]
)
def test_an_unsupported_url_is_an_error_not_a_file(tmp_path: Path, scheme: str) -> None:
    out = run_cli(["run", EXAMPLES / "news.py", "--db", f"{scheme}://u@h:1/db"], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("flock-es: error: unsupported database URL scheme")
    assert len(out.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no file was created under ./mysql:/...


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    out = run_cli(["runs", "--db", "postgresql://postgres@127.0.0.1:1/nope"], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("flock-es: error: cannot connect to postgresql://")
    assert len(out.stderr.strip().splitlines()) == 1


def test_news_on_postgres_matches_sqlite_and_replays_identical(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    assert run_cli(["migrate", "--db", pg_url]).stdout.startswith("created the flock-es schema")
    assert "up to date" in run_cli(["migrate", "--db", pg_url]).stdout
    out = run_cli(["run", EXAMPLES / "news.py", "--db", pg_url], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stderr and "postgresql://" in out.stderr
    lite = tmp_path / "news.db"
    assert run_cli(["run", EXAMPLES / "news.py", "--db", lite, "-q"], cwd=tmp_path).returncode == 0
    run = latest_run(pg_url)
    assert artifacts(pg_url, run) == artifacts(lite, latest_run(lite))
    replay = run_cli(["replay", run, "--db", pg_url])
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.strip().endswith("identical")
    show = run_cli(["show", run[:12], "--db", pg_url])
    assert show.returncode == 0 and "NewsDigest: 1" in show.stdout
    with open_reader(pg_url) as r:
        spans = r.query("SELECT name, duration_ms FROM spans WHERE run_id = ?", (run,))
    assert len(spans) == 9 and all(str(n).endswith(".execute") for n, _ in spans)


def test_export_import_and_fork_across_backends(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    lite = tmp_path / "news.db"
    assert run_cli(["run", EXAMPLES / "news.py", "--db", lite, "-q"], cwd=tmp_path).returncode == 0
    run = latest_run(lite)
    dump = tmp_path / "run.jsonl"
    assert run_cli(["export", run, "--db", lite, "-o", dump]).returncode == 0
    out = run_cli(["import", dump, "--db", pg_url])
    assert out.returncode == 0, out.stderr
    again = run_cli(["import", dump, "--db", pg_url])
    assert again.returncode == 2 and "already in postgresql://" in again.stderr
    assert artifacts(pg_url, run) == artifacts(lite, run)
    back = tmp_path / "back.jsonl"
    assert run_cli(["export", run, "--db", pg_url, "-o", back]).returncode == 0
    assert back.read_text() == dump.read_text()  # byte-identical round trip
    fork = run_cli(["fork", run, "--at", "20", "--db", pg_url, "-q"], cwd=tmp_path)
    assert fork.returncode == 0, fork.stderr
    child = latest_run(pg_url)
    assert child != run
    assert artifacts(pg_url, child) == artifacts(pg_url, run)
    assert run_cli(["replay", child, "--db", pg_url]).stdout.strip().endswith("identical")


def test_flock_es_db_environment_selects_postgres(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    out = run_cli(["run", EXAMPLES / "news.py", "-q"], cwd=tmp_path, env={"FLOCK_ES_DB": pg_url})
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "data").exists()
    runs = run_cli(["runs"], env={"FLOCK_ES_DB": pg_url})
    assert runs.returncode == 0 and "completed" in runs.stdout


def test_a_database_the_server_lacks_is_created_by_a_writer_only(tmp_path: Path) -> None:
    """`docker run postgres` has no database `flock`: README's commands create it
    (migrate, or the first worker or run); a reader says how, in one line."""
    import uuid

    from tests.pg import pg_admin_url

    admin = pg_admin_url()
    name = f"flock_es_new_{uuid.uuid4().hex[:12]}"
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    try:
        out = run_cli(["runs", "--db", url])
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
        assert "does not exist; `flock-es migrate --db URL` creates it" in out.stderr
        out = run_cli(["migrate", "--db", url])
        assert out.stdout.startswith("created the flock-es schema"), out.stderr
        out = run_cli(["run", EXAMPLES / "news.py", "--db", url, "-q"], cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    finally:
        import psycopg

        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Seeds one at a time, some 10 s of them: a cut comes while they still come.
SLOW = (
    AGENTS
    + """
async def main():
    for i in range(100):  # some 10 s of seeds: the cut comes while they still come
        await flock.publish(Item(n=i))
        await asyncio.sleep(0.1)
    await flock.run_until_idle()
"""
)


def _wait_pending(db: str) -> int:
    """The latest run's pending tasks, once none are left (or after a minute)."""
    deadline = time.monotonic() + 60
    while True:
        out = run_cli(["runs", "--db", db, "--json"])
        pending = int(json.loads(out.stdout)[-1]["tasks"]["pending"])
        if pending == 0 or time.monotonic() > deadline:
            return pending
        time.sleep(0.5)


@pytest.mark.slow
def test_connections_cut_mid_run_are_one_line_and_the_run_resumes(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """The server ends the run's connections (a failover, an administrator): one line
    naming the database, none of the pool's own warnings, and ``resume`` finishes."""
    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    # Told not to go on by itself (test_pg_ride_out: it does), which it would when the
    # loss is found only once main() waits, its seeds all published.
    args = ["run", str(prog), "--db", pg_url, "-q", "--reconnect-for", "0"]
    run, _, err = cut_mid_run(args, pg_url, tmp_path)
    assert run.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("flock-es: error: ") and "postgresql://" in lines[0], err
    assert "once the database is back, `flock-es resume r-" in lines[0], err  # how to go on
    done = run_cli(["resume", "latest", "--db", pg_url, "-q"], cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    made = artifacts(pg_url, latest_run(pg_url))
    assert made["Out"] == 4 * made["Item"] and made["Item"] >= 2, made


def _cut_under_a_worker(
    prog: Path,
    url: str,
    direct: str,
    cut: Callable[[], None],
    tmp_path: Path,
    back: Callable[[], None] | None = None,
) -> tuple[str, str]:
    """A worker and ``run --no-execute`` on ``url``; ``cut()`` once tasks are done. The
    run stops with one line naming ``url``. With ``back`` (called 3 s after the cut),
    the same worker, still up, serves ``resume`` (on ``direct``) to the end; without,
    the worker (``--reconnect-for 0``) stops with one line too, and a new one serves
    it. Returns the worker's output and errors."""
    again = [] if back is not None else ["--reconnect-for", "0"]
    worker = start_cli(["worker", str(prog), "--db", url, *again], tmp_path)
    run = start_cli(["run", str(prog), "--db", url, "--no-execute", "-q"], tmp_path)
    try:
        wait_done(direct, 8)
        cut()
        _, rerr = run.communicate(timeout=90)
        if back is None:
            wout, werr = worker.communicate(timeout=90)
            worker = start_cli(["worker", str(prog), "--db", direct], tmp_path)
        else:
            time.sleep(3)
            back()
            # The stopped run was left open, not 'interrupted': the worker goes on with
            # every task published, with no resume.
            assert _wait_pending(direct) == 0
        done = run_cli(["resume", "latest", "--db", direct, "-q"], cwd=tmp_path, timeout=120)
        if back is not None:
            worker.terminate()
            wout, werr = worker.communicate(timeout=60)
    finally:
        worker.kill()
        run.kill()
    where = url.rsplit("/", 1)[0]
    lines = rerr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, rerr
    assert lines[0].startswith("flock-es: error: cannot ") and where in lines[0], rerr
    assert "once the database is back, `flock-es resume r-" in lines[0], rerr  # how to go on
    if back is None:
        lines = werr.strip().splitlines()
        assert worker.returncode != 0 and len(lines) == 1, werr
        assert lines[0].startswith("flock-es: error: cannot ") and where in lines[0], werr
    else:
        assert worker.returncode == 0, werr
        assert "Traceback" not in werr and "lost the database: cannot " in werr, werr
        assert " connected again to " in wout and " stopped after " in wout, wout
    assert done.returncode == 0, done.stderr
    made = artifacts(direct, latest_run(direct))
    assert made["Out"] == 4 * made["Item"] and made["Item"] >= 2, made
    return wout, werr


@pytest.mark.slow
def test_a_worker_whose_connections_are_cut_connects_again(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """A ``flock-es worker`` serving a shared run: the server ends its connections (a
    failover). The publishing run stops with one line; the worker says it lost the
    database, connects again, and serves ``resume`` to the end, with no traceback of a
    task nobody awaited."""
    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    _, werr = _cut_under_a_worker(
        prog, pg_url, pg_url, lambda: cut_connections(pg_url), tmp_path, back=lambda: None
    )
    assert len(werr.strip().splitlines()) == 1, werr  # back within the first attempts


@pytest.mark.slow
def test_a_worker_told_not_to_reconnect_stops_in_one_line(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """``--reconnect-for 0``: a worker whose connections are cut stops with one line
    naming the database, as the publishing run does; a new worker and ``resume``
    finish the run."""
    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    _cut_under_a_worker(prog, pg_url, pg_url, lambda: cut_connections(pg_url), tmp_path)


@pytest.mark.slow
def test_a_server_that_goes_away_is_one_line_for_the_worker_and_the_run(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """The server becomes unreachable under a worker (``--reconnect-for 0``) and ``run
    --no-execute``: each stops with one line naming the database (after the pool's wait
    for a connection, once: a stopping run does not wait again), and ``resume`` on the
    server finishes."""
    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    with proxied(pg_url) as (url, proxy):
        _cut_under_a_worker(prog, url, pg_url, proxy.down, tmp_path)


@pytest.mark.slow
def test_a_worker_waits_for_a_server_that_comes_back(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """The server is out of reach for 3 s under a worker: it says so once, tries again
    (refused meanwhile), connects once the server is back on the same address, and
    serves the resumed run to the end."""
    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    with proxied(pg_url) as (url, proxy):
        revived: list[Proxy] = []

        def back() -> None:
            revived.append(Proxy(*proxy.target, listen=proxy.port))

        try:
            wout, _ = _cut_under_a_worker(prog, url, pg_url, proxy.down, tmp_path, back=back)
        finally:
            for p in revived:
                p.down()
    assert wout.count(" joined run ") >= 2, wout  # the run, once by each worker


@pytest.mark.slow
def test_a_worker_stopped_while_its_server_is_away_stops_cleanly(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """SIGTERM while the server is out of reach (the worker may be waiting on the pool
    for a connection): exit 0, how many tasks it executed, the one line of the loss,
    no traceback."""
    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    with proxied(pg_url) as (url, proxy):
        worker = start_cli(["worker", str(prog), "--db", url], tmp_path)
        run = start_cli(["run", str(prog), "--db", url, "--no-execute", "-q"], tmp_path)
        try:
            wait_done(pg_url, 8)
            proxy.down()
            run.communicate(timeout=90)
            worker.terminate()
            out, err = worker.communicate(timeout=60)
        finally:
            worker.kill()
            run.kill()
    assert worker.returncode == 0, err
    assert " stopped after " in out.splitlines()[-1], out
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err


def _events(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        try:
            row = con.execute("SELECT count(*) FROM events").fetchone()
        except psycopg.errors.UndefinedTable:  # the run has not made its schema yet
            return 0
    return int(row[0]) if row else 0


# 400 seeds at once: 1,600 tasks start together.
WIDE = (
    AGENTS
    + """
async def main():
    await flock.publish_many([Item(n=i) for i in range(400)])
    await flock.run_until_idle()
"""
)


@pytest.mark.slow
@pytest.mark.parametrize("after", [1, 2001, 2100])
def test_a_run_whose_server_goes_away_never_passes_fordone_tasks(
    after: int,
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """The server goes away as the run starts, as its agents start, as their outputs
    come: ``run`` stops with one line and exit 2. At some moments it said 'completed'
    (exit 0) with most of its tasks left, or waited for ever (its worker loop gone, its
    own wait polling on): a narrow window, about 2.2 to 2.6 s after the start on one
    host, that these points do not hit reliably (they passed before the fix too)."""
    prog = tmp_path / "wide.py"
    prog.write_text(WIDE)
    with proxied(pg_url) as (url, proxy):
        # Told not to wait for the server to come back (``test_pg_ride_out``: it does).
        run = start_cli(["run", str(prog), "--db", url, "-q", "--reconnect-for", "0"], tmp_path)
        try:
            deadline = time.monotonic() + 60
            while _events(pg_url) < after and time.monotonic() < deadline:
                time.sleep(0.05)
            proxy.down()
            _, err = run.communicate(timeout=90)
        finally:
            run.kill()
    assert run.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flock-es: error: cannot "), err


@pytest.mark.parametrize(
    ("command", "url", "why"),
    [
        (["runs"], "postgresql://postgres:s3cret@127.0.0.1:abc/test", "port is not a number"),
        (["run", str(EXAMPLES / "news.py")], "postgresql://postgres@127.0.0.1:99999/test", "port"),
        (["tui"], "postgresql://postgres@[::1/x", "opens a '[' it never closes"),
        (["runs"], "postgresql://postgres@h1:5432,h2:5433/test", "several hosts"),
    ],
)
def test_a_malformed_postgres_url_is_one_line_naming_it(
    tmp_path: Path, command: list[str], url: str, why: str
) -> None:
    out = run_cli([*command, "--db", url], cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("flock-es: error: bad PostgreSQL URL postgresql://postgres"), line
    assert why in line and "s3cret" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_bad_url_message_never_shows_the_password() -> None:
    from flock_es.errors import DatabaseError
    from flock_es.log.backends import parse_db

    # A '/' or '@' left unescaped in a password: urlsplit takes a piece of it for the
    # port or the host; the message masks up to the last '@'.
    for url, secret in [
        ("postgresql://u:pa/ss@h:5432/db", "pa/ss"),
        ("postgresql://u:p@ss@h:abc/db", "p@ss"),
        ("mysql://u:pw/x@h/db", "pw/x"),
    ]:
        with pytest.raises(DatabaseError) as err:
            parse_db(url)
        assert secret not in str(err.value) and "u:***@" in str(err.value), err.value
