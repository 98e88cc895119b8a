"""``flock-es resume``: Ctrl-C, timers, recorded model calls, and what cannot be resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import pytest

from flock_es import Flock
from flock_es.domain.events import EventKind
from flock_es.errors import UserError
from flock_es.log.reader import LogReader
from flock_es.log.writer import LogWriter
from flock_es.projection.fold import fold
from tests.conftest import CLI, EXAMPLES, ROOT, cli_env, run_cli

PROGRAMS = ROOT / "tests" / "programs"


def events_of(db: Path) -> list[tuple[str, dict[str, Any]]]:
    with LogReader(db) as reader:
        return [(e.kind.value, e.body) for e in reader.events(reader.resolve_run("latest"))]


def wait_for(db: Path, pred: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred(events_of(db)):  # type: ignore[operator]
                return
        except UserError:
            pass
        time.sleep(0.005)
    raise AssertionError("condition not reached")


def start_run(program: Path, db: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "run", str(program), "--db", str(db), "-q"],
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_marks_interrupted_and_resume_finishes(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "c.db"
    proc = start_run(PROGRAMS / "crash_pipeline.py", db, {"CRASH_LATENCY": "0.5"})
    wait_for(db, lambda evs: any(k == "task.started" for k, _ in evs))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    evs = events_of(db)
    assert evs[-1][0] == "run.finished" and evs[-1][1]["status"] == "interrupted"
    assert evs[-1][1]["reason"] == sig.name
    runs = json.loads(run_cli(["runs", "--db", db, "--json"]).stdout)
    assert runs[0]["status"] == "interrupted" and runs[0]["tasks"]["pending"] > 0

    out = run_cli(["resume", "latest", "--db", db, "-q"], env={"CRASH_LATENCY": "0.5"})
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stderr
    runs = json.loads(run_cli(["runs", "--db", db, "--json"]).stdout)
    assert runs[0]["status"] == "completed" and runs[0]["tasks"]["pending"] == 0
    assert runs[0]["tasks"]["done"] == 33
    kinds = [k for k, _ in events_of(db)]
    assert kinds.count("run.resumed") == 1


def test_resuming_a_finished_run_has_nothing_to_do(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    assert run_cli(["run", EXAMPLES / "chain.py", "--db", db, "-q"]).returncode == 0
    before = len(events_of(db))
    out = run_cli(["resume", "latest", "--db", db])
    assert out.returncode == 0
    assert "nothing to resume" in out.stdout
    assert len(events_of(db)) == before


def test_resume_rearms_the_batch_timer_from_its_recorded_deadline(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    proc = start_run(PROGRAMS / "batch_timeout.py", db, {"BATCH_TIMEOUT": "1.0"})
    wait_for(db, lambda evs: sum(k == "batch.buffered" for k, _ in evs) == 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    evs = events_of(db)
    assert not any(k == "task.scheduled" for k, _ in evs)
    deadline = next(b["deadline"] for k, b in evs if k == "batch.buffered" and b["deadline"])

    out = run_cli(["resume", "latest", "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    with LogReader(db) as reader:
        run = reader.resolve_run("latest")
        state = fold(reader.iter_events(run))
        flush = [e for e in reader.events(run) if e.kind is EventKind.TASK_SCHEDULED]
    assert len(flush) == 1 and flush[0].body["reason"] == "batch_timeout"
    assert flush[0].ts >= deadline
    (tally,) = (a for a in state.artifacts.values() if a.type == "Tally")
    assert tally.payload == {"count": 3, "total": 3}
    assert not state.batches


def test_recorded_model_calls_are_served_not_paid_again(tmp_path: Path) -> None:
    """A crash after the model answered but before the task's outputs committed."""
    full = tmp_path / "full.db"
    assert run_cli(["run", EXAMPLES / "chain.py", "--db", full, "-q"]).returncode == 0
    with LogReader(full) as reader:
        events = reader.events(reader.resolve_run("latest"))
    last_call = max(i for i, e in enumerate(events) if e.kind is EventKind.MODEL_CALLED)
    calls = sum(e.kind is EventKind.MODEL_CALLED for e in events)
    crashed = tmp_path / "crashed.db"

    async def write_prefix() -> None:
        writer = await LogWriter.open(crashed)
        for e in events[: last_call + 1]:
            e.seq = None
        await writer.append(events[: last_call + 1])
        await writer.close()

    import asyncio

    asyncio.run(write_prefix())
    out = run_cli(["resume", "latest", "--db", crashed, "-q"])
    assert out.returncode == 0, out.stderr
    after = events_of(crashed)
    assert sum(k == "model.called" for k, _ in after) == calls
    assert sum(k == "task.completed" for k, _ in after) == 3
    with LogReader(full) as a, LogReader(crashed) as b:
        sa = fold(a.iter_events(a.resolve_run("latest")))
        sb = fold(b.iter_events(b.resolve_run("latest")))
    assert {k: v.payload for k, v in sa.artifacts.items()} == {
        k: v.payload for k, v in sb.artifacts.items()
    }


async def test_a_run_whose_process_is_alive_is_not_resumed(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    flock = Flock(db=db)
    from pydantic import BaseModel

    class Ping(BaseModel):
        n: int

    flock.agent("noop").consumes(Ping).with_function(lambda p: None)
    await flock.publish(Ping(n=1))
    await flock.run_until_idle()
    await cast(LogWriter, flock.engine.writer).close()  # no run.finished: still running
    runs = json.loads(run_cli(["runs", "--db", db, "--json"]).stdout)
    assert runs[0]["status"] == "running"
    out = run_cli(["resume", flock.run_id, "--db", db])
    assert out.returncode != 0
    assert "still running" in out.stderr and str(os.getpid()) in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_resume_needs_the_program(tmp_path: Path) -> None:
    prog = tmp_path / "gone.py"
    prog.write_text((PROGRAMS / "batch_timeout.py").read_text())
    db = tmp_path / "g.db"
    proc = start_run(prog, db, {"BATCH_TIMEOUT": "30"})
    wait_for(db, lambda evs: sum(k == "batch.buffered" for k, _ in evs) == 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    prog.unlink()
    out = run_cli(["resume", "latest", "--db", db])
    assert out.returncode == 2
    assert "no longer exists" in out.stderr and "--program" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
