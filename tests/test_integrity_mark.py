"""A log unchanged since a flock-es process that wrote it exited is not checked again
(``flock_es.log.verified``); any change to it, damage included, is.

On a 1.3 GB log every ``flock-es run`` spent a second on the bounded integrity
check (1.4 s against 0.4 s on a new file), and each read command a fifth of one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flock_es.log import LogWriter, integrity, verified
from flock_es.log.reader import LogReader
from flock_es.log.schema import READER_CHECK_SECONDS
from tests.conftest import CLI, EXAMPLES, cli_env, run_cli
from tests.test_artifacts_by_seq import Answer, Letter
from tests.test_faults import one_line_error
from tests.test_integrity_once import counted_checks
from tests.two_agent_run import two_agent_run

NEWS = EXAMPLES / "news.py"


def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the files this process checked, as a new process would."""
    monkeypatch.setattr(integrity, "_CHECKED", {})


async def test_a_marked_log_is_not_checked_and_a_changed_one_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "notes.db"
    await two_agent_run(db, Letter, Answer, 2)
    verified.mark(db)  # what this process's exit does
    assert verified.unchanged(db)
    made = counted_checks(monkeypatch)
    _fresh_process(monkeypatch)
    LogReader(db, verify=True).close()
    w = await LogWriter.open(db)
    await w.close()
    assert made == []  # neither the reader's check nor the writer's

    # A writer that commits: the mark no longer fits once it has (its WAL holds the
    # commit, and then the file does), and the next process checks the file again.
    w = await LogWriter.open(db)
    await two_agent_run(db, Letter, Answer, 1)
    assert not verified.unchanged(db)
    await w.close()
    assert not verified.unchanged(db)
    _fresh_process(monkeypatch)
    LogReader(db, verify=True).close()
    assert made == [READER_CHECK_SECONDS]


@pytest.mark.slow
def test_a_run_marks_its_log_and_damage_in_place_is_still_refused(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    for _ in range(2):
        out = run_cli(["run", NEWS, "--db", db, "-q"], cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert verified.unchanged(db)  # left marked by the run's exit
    mark = db.with_name(db.name + verified.MARK_SUFFIX)
    assert json.loads(mark.read_text())[:3] == [
        os.stat(db).st_dev,
        os.stat(db).st_ino,
        os.stat(db).st_size,
    ]

    # The same file (same inode) damaged in place: a page of zeros in its middle.
    with open(db, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size // 4096 // 2 * 4096)
        f.write(bytes(4096))
    assert not verified.unchanged(db)
    before = db.read_bytes()
    for cmd in (["run", NEWS, "-q"], ["runs"]):
        out = run_cli([*cmd, "--db", db], cwd=tmp_path)
        one_line_error(out, "is damaged", str(db))
        assert not mark.exists()  # a process that saw damage never marks the file
    assert db.read_bytes() == before  # nobody appended to it


_SLOW = """
import asyncio, sys
from pydantic import BaseModel
from flock_es import Flock

class Tick(BaseModel):
    n: int

flock = Flock(db=sys.argv[1])

@flock.agent("slow").consumes(Tick).with_function
async def slow(t: Tick) -> None:
    await asyncio.sleep(60)

async def main():
    await flock.publish(Tick(n=1))
    print("acknowledged", flush=True)
    await flock.run_until_idle()

asyncio.run(main())
"""


@pytest.mark.slow
def test_a_killed_writer_leaves_its_log_to_be_checked(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    assert run_cli(["run", NEWS, "--db", db, "-q"], cwd=tmp_path).returncode == 0
    assert verified.unchanged(db)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout is not None and "acknowledged" in proc.stdout.readline()
        assert not verified.unchanged(db)  # a live writer's commits
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.05)
    assert not verified.unchanged(db)  # its commits wait in the WAL or changed the file
    out = subprocess.run(
        [*CLI, "runs", "--db", str(db)], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert out.returncode == 0, out.stderr
