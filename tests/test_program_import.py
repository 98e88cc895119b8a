"""A program that starts its run when imported (``asyncio.run(main())`` at module level).

``flock-es run``, ``resume`` and ``replay`` import the program and call ``main()``
themselves. Run at import, the program's run would ignore ``--db`` and ``--model``,
and under ``resume`` or ``replay`` it would be a new run paying for every call
again. Each command refuses it in one line naming the line to move, before
anything runs: no database is created, no event appended.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import run_cli

PROGRAM = """\
import asyncio, os
from pydantic import BaseModel
from flock_es import Flock

class Job(BaseModel):
    n: int

class Done(BaseModel):
    n: int

flock = Flock()

async def work(job: Job) -> Done:
    await asyncio.sleep(float(os.environ.get("WORK_S", "0")))
    return Done(n=job.n)

flock.agent("worker").consumes(Job).publishes(Done).with_function(work)

async def main():
    await flock.publish_many([Job(n=i) for i in range(3)])
    await flock.run_until_idle(timeout=float(os.environ.get("IDLE_S", "30")))

"""
GUARDED = 'if __name__ == "__main__":\n    asyncio.run(main())\n'
AT_IMPORT = "asyncio.run(main())\n"
LINE = PROGRAM.count("\n") + 1  # the line of AT_IMPORT


def refused(out: object, name: str) -> None:
    stderr = getattr(out, "stderr", "")
    assert getattr(out, "returncode", None) == 2, stderr
    assert "Traceback" not in stderr
    # resume and replay may warn first that the program changed since the run.
    lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith("flock-es: warning:")]
    assert len(lines) == 1 and lines[0].startswith("flock-es: error:"), stderr
    assert f"{name}:{LINE}: starts a run while flock-es imports the program" in lines[0]
    assert 'if __name__ == "__main__":' in lines[0]


def counts(db: Path) -> tuple[int, int]:
    con = sqlite3.connect(db)
    try:
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        return int(events), int(runs)
    finally:
        con.close()


def test_run_refuses_it_before_anything_is_written(tmp_path: Path) -> None:
    prog = tmp_path / "selfrun.py"
    prog.write_text(PROGRAM + AT_IMPORT)
    db = tmp_path / "x.db"
    refused(run_cli(["run", prog, "--db", db], cwd=tmp_path), "selfrun.py")
    assert not db.exists()
    assert not (tmp_path / "data").exists()  # nor the program's own default database


def test_resume_and_replay_refuse_it_and_the_log_is_unchanged(tmp_path: Path) -> None:
    prog = tmp_path / "selfrun.py"
    prog.write_text(PROGRAM + GUARDED)
    db = tmp_path / "x.db"
    # An interrupted run: its tasks sleep longer than main() waits for them.
    slow = {"WORK_S": "30", "IDLE_S": "0.3"}
    out = run_cli(["run", prog, "--db", db, "-q"], cwd=tmp_path, env=slow)
    assert "Traceback" not in out.stderr, out.stderr
    con = sqlite3.connect(db)
    (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
    con.close()
    before = counts(db)
    prog.write_text(PROGRAM + AT_IMPORT)  # the same program, now run at import
    refused(run_cli(["resume", run_id, "--db", db], cwd=tmp_path), "selfrun.py")
    refused(run_cli(["replay", run_id, "--db", db], cwd=tmp_path), "selfrun.py")
    assert counts(db) == before
    assert not (tmp_path / "data").exists()
