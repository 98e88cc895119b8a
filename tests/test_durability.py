"""Power loss: every commit carrying a paid result is fsynced before append returns.

Observed from outside with strace: a writer appends units that carry a
``model.called`` (or ``tool.called``) interleaved with units that carry none;
between two markers we count the fsync/fdatasync calls on the WAL. In ``full``
(the default) there is exactly one per paid commit; in ``normal`` there is
none (SQLite syncs at checkpoints only).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import CLI, EXAMPLES, cli_env

WRITER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from flock_es.domain.events import (
        ArtifactPublished, EventKind, ModelCalled, RunStarted, ToolCalled, make_event,
    )
    from flock_es.log import Durability, open_store

    RUN = "r-sync"
    PAID = int(sys.argv[3])

    async def main():
        if sys.argv[4:] == ["precise"]:  # a run's loop: units commit on the loop's thread
            from flock_es.models.precise_timers import make_timers_precise
            assert make_timers_precise(asyncio.get_running_loop())
        store = open_store(sys.argv[1])
        w = await store.open_writer(Durability(sys.argv[2]))
        await w.append([make_event(RUN, EventKind.RUN_STARTED, RunStarted(model="offline", agents=[]), time.time())])
        os.write(2, b"MARK-BEGIN\\n")
        for i in range(PAID):
            if i % 2:
                kind = EventKind.TOOL_CALLED
                paid = ToolCalled(task_id="t", agent="a", call_index=i, position=0,
                                  call_id="c", tool="f", arguments="{}", result="r")
            else:
                kind = EventKind.MODEL_CALLED
                paid = ModelCalled(task_id="t", agent="a", call_index=i, model="m",
                                   request={}, response="x" * 500)
            await w.append([make_event(RUN, kind, paid, time.time())])
            free = ArtifactPublished(id=f"a-{i}", type="Seed", payload={"i": i})
            await w.append([make_event(RUN, EventKind.ARTIFACT_PUBLISHED, free, time.time())])
        os.write(2, b"MARK-END\\n")
        os.write(1, f"inline={getattr(w, 'inline_commits', 0)}\\n".encode())
        await w.close()

    asyncio.run(main())
    """
)

STRACE = ["strace", "-f", "-y", "-e"]
PY = [sys.executable, "-c"]
needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)"
)


def wal_syncs(trace: str) -> int:
    """fsync/fdatasync calls on the WAL between the two markers of the traced writer."""
    begin = trace.index("MARK-BEGIN")
    end = trace.index("MARK-END")
    window = trace[begin:end]
    return len(re.findall(r"\b(?:fsync|fdatasync)\(\d+<[^>]*-wal>\)", window))


def traced(tmp_path: Path, durability: str, paid: int, precise: bool = False) -> str:
    log = tmp_path / f"strace-{durability}.txt"
    db = tmp_path / f"{durability}.db"
    out = subprocess.run(
        [
            *STRACE,
            "trace=fsync,fdatasync,write",
            "-o",
            str(log),
            *PY,
            WRITER,
            str(db),
            durability,
            str(paid),
            *(["precise"] if precise else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0 and "ptrace" in out.stderr:
        pytest.skip(f"strace cannot trace here: {out.stderr.strip()[:200]}")
    assert out.returncode == 0, out.stderr
    if precise:  # the loop committed them itself
        assert int(out.stdout.split("inline=")[1]) >= 2 * paid
    return log.read_text()


@needs_strace
def test_full_durability_fsyncs_every_paid_commit_and_only_those(tmp_path: Path) -> None:
    assert wal_syncs(traced(tmp_path, "full", 12)) == 12


@needs_strace
def test_full_durability_fsyncs_paid_commits_made_on_the_loop_s_thread(tmp_path: Path) -> None:
    assert wal_syncs(traced(tmp_path, "full", 12, precise=True)) == 12


@needs_strace
def test_normal_durability_does_not_fsync_commits(tmp_path: Path) -> None:
    assert wal_syncs(traced(tmp_path, "normal", 12)) == 0


def test_durability_option_is_validated(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            *CLI,
            "run",
            str(EXAMPLES / "news.py"),
            "--db",
            str(tmp_path / "d.db"),
            "-q",
            "--durability",
            "sometimes",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "sometimes" in out.stderr


@needs_strace
def test_the_news_run_syncs_its_model_calls_by_default(tmp_path: Path) -> None:
    """Through the CLI: one sync per commit with a model.called, at least."""
    log = tmp_path / "news-strace.txt"
    db = tmp_path / "news.db"
    out = subprocess.run(
        [
            *STRACE,
            "trace=fsync,fdatasync",
            "-o",
            str(log),
            *CLI,
            "run",
            str(EXAMPLES / "news.py"),
            "--db",
            str(db),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    syncs = len(re.findall(r"(?:fsync|fdatasync)\(\d+<[^>]*-wal>\)", log.read_text()))
    import sqlite3

    con = sqlite3.connect(db)
    calls = con.execute("SELECT count(*) FROM events WHERE kind='model.called'").fetchone()[0]
    con.close()
    # Nine model agents each commit their answer with their completion; group commit
    # may put several answers in one synced transaction, never none.
    assert calls == 9 and syncs >= 1
