"""A live run's checkpoint job does not outlive the run: a run killed with SIGKILL
(which cannot stop its job) leaves no job folding on and no snapshot stored after
its death. Real processes throughout."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from flock_es.log.ports import open_store
from flock_es.runtime.checkpoints import FIRST_CHECKPOINT, Checkpoints
from tests.conftest import EXAMPLES, run_cli

# The "run": it holds the database's write lock, so its checkpoint job folds and then
# waits to store its snapshot for as long as the run lives. Then it is SIGKILLed: its
# lock goes with it, and a job left running would store the snapshot.
_RUN = textwrap.dedent(
    """
    import sqlite3, sys, time
    from flock_es.log.ports import open_store
    from flock_es.runtime.checkpoints import Checkpoints

    db, run = sys.argv[1], sys.argv[2]
    with open_store(db).reader() as log:
        events = log.events(run)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    checkpoints = Checkpoints(db, run, events=0, every=1)
    checkpoints.committed(events)
    assert checkpoints.job is not None
    print(checkpoints.job.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, not yet reaped by its new parent, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "Z" not in state.split()[1:2]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_job_stops_when_its_run_is_killed(tmp_path: Path) -> None:
    db = str(tmp_path / "news.db")
    out = run_cli(["run", EXAMPLES / "news.py", "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    store = open_store(db)
    with store.reader() as log:
        run = log.runs()[-1].run_id
        assert log.snapshot(run) is None
    parent = subprocess.Popen(
        [sys.executable, "-c", _RUN, db, run], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    job = int(parent.stdout.readline())
    assert _alive(job)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60  # a liveness bound, not a measurement
    while _alive(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(job), "the checkpoint job outlived its killed run"
    with store.reader() as log:
        assert log.snapshot(run) is None, "the orphaned job stored its snapshot"


def test_a_job_whose_run_is_already_gone_does_nothing(tmp_path: Path) -> None:
    """Started with a parent pid that is not its parent (the run died before the job
    could ask to be signalled): it exits at once, status 3."""
    env = dict(os.environ, FLOCK_ES_SNAPSHOT_JOB_PARENT=str(os.getpid() + 1_000_000))
    job = subprocess.run(
        [sys.executable, "-m", "flock_es.log.snapshot_job", str(tmp_path / "none.db"), "r-x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert job.returncode == 3, job.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_resumed_run_far_behind_its_latest_snapshot_checkpoints_at_its_first_commit() -> None:
    from flock_es.runtime.checkpoints import Checkpoints

    assert Checkpoints("x.db", "r-x", events=500, every=100, lag=250).next_at == 500
    assert Checkpoints("x.db", "r-x", events=500, every=100, lag=30).next_at == 570
    assert Checkpoints("x.db", "r-x", events=500, every=100).next_at == 600


def test_a_long_run_checkpoints_at_most_step_max_events_apart() -> None:
    """A job folds only the events since the latest snapshot (the chain's next link),
    so a long run's checkpoints need not be spaced ever wider: a crash leaves at most
    ``STEP_MAX`` events to fold again."""
    from flock_es.runtime.checkpoints import GROWTH, STEP_MAX, Checkpoints

    assert Checkpoints("x.db", "r-x", events=50, every=100).step() == 100
    assert Checkpoints("x.db", "r-x", events=1_000, every=100).step() == int(1_000 * (GROWTH - 1))
    assert Checkpoints("x.db", "r-x", events=100 * STEP_MAX, every=100).step() == STEP_MAX
    assert Checkpoints("x.db", "r-x", events=10**9, every=2 * STEP_MAX).step() == 2 * STEP_MAX


def _started(db: str) -> subprocess.Popen[bytes]:
    """A job started as a live run starts it (on its first commit)."""
    from flock_es.runtime.checkpoints import Checkpoints

    checkpoints = Checkpoints(db, "r-x", events=1, every=1, lag=1)
    checkpoints.committed([])
    assert checkpoints.job is not None
    return checkpoints.job


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
def test_a_job_runs_at_the_lowest_priority_from_its_start(tmp_path: Path) -> None:
    """Set by the run as it starts the job, not by the job after its imports (a
    quarter of its CPU). Niceness, not SCHED_IDLE: a starved job would hold its read
    transaction, or the write lock the run's writer waits for, for too long."""
    from flock_es.log.snapshot_job import NICENESS

    job = _started(str(tmp_path / "none.db"))
    try:
        # The job is still starting (its imports alone take a tenth of a second).
        assert os.getpriority(os.PRIO_PROCESS, job.pid) == NICENESS == 19
        if hasattr(os, "sched_getscheduler"):
            assert os.sched_getscheduler(job.pid) == os.SCHED_OTHER
    finally:
        assert job.wait(timeout=60) == 2  # no database: nothing stored


@pytest.mark.slow
def test_a_job_imports_the_run_s_flock_es_not_one_in_its_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m`` puts the working folder first on the path: a run started in a
    folder holding another flock-es checkout had its job fold with that code."""
    fake = tmp_path / "flock_es"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit(42)\n")
    monkeypatch.chdir(tmp_path)
    job = _started("none.db")
    # 2: the real job, which found no database; the other checkout would exit with 42.
    assert job.wait(timeout=60) == 2
    assert not (tmp_path / "none.db").exists()


def test_a_job_of_a_plain_install_keeps_the_standard_library_first_on_its_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An installed flock-es is in a site directory, which the job finds anyway: first
    on its path, a package there could shadow a module of the standard library."""
    import site

    import flock_es.runtime.checkpoints as checkpoints

    monkeypatch.delenv("PYTHONPATH", raising=False)
    installed = str(Path(site.getsitepackages()[0]).resolve())
    monkeypatch.setattr(checkpoints, "_root", lambda: installed)
    assert "PYTHONPATH" not in checkpoints.job_env("x.db")
    monkeypatch.setattr(checkpoints, "_root", lambda: "/src/flock-es")
    monkeypatch.setenv("PYTHONPATH", "/lib")
    assert checkpoints.job_env("x.db")["PYTHONPATH"] == os.pathsep.join(["/src/flock-es", "/lib"])


def _checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The integrity checks made from now on (``integrity.verify``, by reader or writer)."""
    import flock_es.log.reader as reader_module
    import flock_es.log.sqlite_file as file_module

    made: list[str] = []
    for module, name in ((reader_module, "verify_db"), (file_module, "verify")):
        check = getattr(module, name)

        def counted(*args: object, _check: object = check, _name: str = name) -> None:
            made.append(_name)
            _check(*args)  # type: ignore[operator]

        monkeypatch.setattr(module, name, counted)
    return made


def test_a_runs_job_does_not_check_the_file_its_run_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job started by a run skips the integrity check (the run's writer made it when
    it opened the file, and appends to it all along); bounded in time, not in work, it
    cost each job of a long run over a second of CPU. A job started by hand checks."""
    from flock_es.log.snapshot_job import snapshot_now
    from tests.test_snapshot_chain import _large_log

    db, by_hand = tmp_path / "large.db", tmp_path / "copy.db"
    run, _ = _large_log(db, 60)
    shutil.copy(db, by_hand)
    made = _checks(monkeypatch)
    assert snapshot_now(str(db), run, at_least=1, checked=True)
    assert made == []
    with open_store(db).reader() as log:
        assert log.snapshot(run) is not None
    assert snapshot_now(str(by_hand), run, at_least=1)
    assert made == ["verify_db", "verify"]  # its reader's, then its writer's


def test_a_job_started_by_a_run_is_told_the_file_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import flock_es.log.snapshot_job as job

    calls: list[tuple[bool, bool]] = []

    def fake(
        db: str, run_id: str, at_least: int, checked: bool = False, idle: bool = False
    ) -> bool:
        calls.append((checked, idle))
        return True

    monkeypatch.setattr(job, "snapshot_now", fake)
    monkeypatch.setattr(job, "stop_with_parent", lambda parent: True)
    monkeypatch.setattr(job, "lower_priority", lambda pid=0: None)
    monkeypatch.delenv(job.PARENT_ENV, raising=False)
    assert job.main(["x.db", "r-x"]) == 0
    monkeypatch.setenv(job.PARENT_ENV, "12345")
    assert job.main(["x.db", "r-x"]) == 0
    assert calls == [(False, True), (True, True)]  # a job folds in an idle thread


def test_a_job_keeps_the_views_it_parks_as_seqs_from_its_first_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's first job (no link to go on from) parks its artifact views as seqs too,
    as the later ones do, rather than pickling each a second time (``Parked``)."""
    from flock_es.log.snapshot_job import snapshot_now
    from flock_es.projection.snapshot_links import Parked
    from tests.test_snapshot_chain import _large_log

    db = tmp_path / "large.db"
    run, _ = _large_log(db, 60)
    by_seq: list[bool] = []
    add = Parked.add

    def watched(self: Parked, view: Any) -> None:
        by_seq.append(self.read is not None)
        add(self, view)

    monkeypatch.setattr(Parked, "add", watched)
    assert snapshot_now(str(db), run, at_least=1, checked=True)
    assert by_seq and all(by_seq)


def test_the_first_checkpoint_waits_for_first_events_past_the_latest_snapshot() -> None:
    assert Checkpoints("x.db", "r-x", events=0, every=100, first=1_000).next_at == 1_000
    # A resume that folded 400 events past its latest snapshot: 600 more, then a job.
    assert Checkpoints("x.db", "r-x", events=500, every=100, lag=400, first=1_000).next_at == 1_100
    assert Checkpoints("x.db", "r-x", events=500, every=100, lag=2_000, first=1_000).next_at == 500


def _short_run(
    db: Path | str, items: int, monkeypatch: pytest.MonkeyPatch, shared: bool = False
) -> Checkpoints:
    """A live run of workload (b)'s shape (8 function agents, ``items`` artifacts, about
    26 events an artifact); the run's ``Checkpoints``, recorded as it made them.
    ``shared``: a run open to workers, as ``flock-es run --share`` (or on PostgreSQL)."""
    import asyncio

    from pydantic import BaseModel

    from flock_es import Flock
    from flock_es.runtime import run_lifecycle

    class Item(BaseModel):
        n: int

    class Out(BaseModel):
        n: int

    made: list[Checkpoints] = []

    class Recorded(Checkpoints):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            made.append(self)

    def work(x: Item) -> Out:
        return Out(n=x.n)

    async def run() -> None:
        flock = Flock(db=db)
        for i in range(8):
            flock.agent(f"f{i}").consumes(Item).publishes(Out).with_function(work)
        if shared:
            from flock_es.runtime.sharing import ShareRun

            flock.share = ShareRun(flock, str(db), execute=True, concurrency=16)
        await flock.publish_many([Item(n=i) for i in range(items)])
        await flock.run_until_idle()
        await flock.close()

    monkeypatch.setattr(run_lifecycle, "Checkpoints", Recorded)
    asyncio.run(run())
    assert len(made) == 1
    return made[0]


def test_a_short_live_run_starts_no_checkpoint_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job beside a short run cost it a fifth of its rate (workload (b), 2,000
    artifacts: issue 14), to save a fold ``resume`` or ``show --at`` makes in well
    under a second; a run that grows past ``FIRST_CHECKPOINT`` events starts one."""
    from flock_es.runtime import run_lifecycle

    short = _short_run(tmp_path / "short.db", 400, monkeypatch)
    assert 10_000 < short.events < FIRST_CHECKPOINT
    assert short.started == 0 and short.next_at == FIRST_CHECKPOINT
    monkeypatch.setattr(run_lifecycle, "FIRST_CHECKPOINT", 5_000)
    longer = _short_run(tmp_path / "longer.db", 400, monkeypatch)
    assert longer.started == 1


@pytest.mark.slow  # 3.0 s here: a shared run long enough to start its job, and its resume
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_shared_run_checkpoints_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """A run open to workers (every run on PostgreSQL) starts its checkpoint job as a
    run of its own does: the workers that join it and its resume fold from the latest
    snapshot, not from its first event."""
    from flock_es.runtime import run_lifecycle

    monkeypatch.setattr(run_lifecycle, "FIRST_CHECKPOINT", 5_000)
    if backend == "sqlite":
        assert _short_run(tmp_path / "shared.db", 400, monkeypatch, shared=True).started == 1
        return
    from tests.pg import pg_admin_url, pg_database

    with pg_database(pg_admin_url()) as url:
        assert _short_run(url, 400, monkeypatch, shared=True).started == 1
