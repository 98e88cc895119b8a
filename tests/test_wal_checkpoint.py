"""WAL checkpoints beside the writer (``log/wal_checkpoint.py``): behaviour and crash
safety, never speed.

The writer's commits kick a thread of its own that runs passive checkpoints once
``every`` events were committed since the last; a short log never sees one; the
thread ends with the writer; commits acknowledged before a SIGKILL that came after
background checkpoints are all in the log, which passes ``integrity_check``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import textwrap
import threading
import time
from pathlib import Path

import pytest

from flock_es.log import LogReader, LogWriter
from flock_es.log.wal_checkpoint import EVERY_EVENTS, WalCheckpointer, wal_reached
from tests.conftest import run_killed_writer
from tests.log_contract import RUN, artifact, started

KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time
    from flock_es.log import LogWriter
    from tests.log_contract import RUN, artifact, started

    async def main():
        w = await LogWriter.open(sys.argv[1])
        w.wal.every, w.wal.from_frames = 20, 0
        await w.append([started()])
        for i in range(300):
            await w.append([artifact(i)])
        deadline = time.monotonic() + 30
        while w.wal.checkpoints < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for i in range(300, 320):  # after the checkpoints: in the WAL only
            await w.append([artifact(i)])
        print("acknowledged", w.wal.checkpoints, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close: no last checkpoint either

    asyncio.run(main())
    """
)


def _wal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "flock-es-wal"]


async def _until(cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.01)


async def test_commits_past_every_events_checkpoint_in_the_background(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    w = await LogWriter.open(db)
    assert w.wal is not None
    w.wal.every, w.wal.from_frames = 50, 0
    await w.append([started()])
    for i in range(0, 400, 10):
        await w.append([artifact(j) for j in range(i, i + 10)])
    wal = w.wal
    await _until(lambda: wal.checkpoints >= 1)
    assert wal.checkpoints >= 1
    # The main file holds what was checkpointed: a connection that reads it sees events
    # without the WAL's help once every frame is copied (as the writer's close makes sure).
    await w.close()
    assert w.wal is None and not _wal_threads()
    with LogReader(db) as reader:
        got = [e for e in reader.iter_events(RUN) if e.kind.value == "artifact.published"]
    assert len(got) == 400


async def test_a_short_log_never_checkpoints_in_the_background(tmp_path: Path) -> None:
    w = await LogWriter.open(tmp_path / "s.db")
    assert w.wal is not None and w.wal.every == EVERY_EVENTS
    await w.append([started()])
    for i in range(50):
        await w.append([artifact(i)])
    assert w.wal.checkpoints == 0 and w.wal.pending == 51
    await w.close()
    assert not _wal_threads()


async def test_a_short_wal_is_left_to_the_writer_however_many_events(tmp_path: Path) -> None:
    """Kicked, but the WAL never held ``from_frames`` frames: no checkpoint (a
    2,000-artifact run's WAL never reaches the writer's own checkpoint either)."""
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    assert w.wal is not None
    w.wal.every = 10
    await w.append([started()])
    for i in range(0, 200, 10):
        await w.append([artifact(j) for j in range(i, i + 10)])
    assert not wal_reached(db, w.wal.from_frames, 4096) and wal_reached(db, 1, 4096)
    time.sleep(0.2)  # the kicks are seen
    assert w.wal.checkpoints == 0
    await w.close()
    assert not wal_reached(tmp_path / "none.db", 1, 4096)


def test_reading_the_wal_s_size_keeps_sqlite_s_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wal_reached`` opens no file of the log: a descriptor closed in this process
    would drop SQLite's POSIX locks on it (the wal-index's among them), and another
    connection would then take the wal-index for abandoned and reset it."""
    db = tmp_path / "f.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE t(x)")
    for _ in range(30):
        con.execute("INSERT INTO t VALUES (randomblob(3000))")
    opened: list[str] = []
    real_open = os.open

    def watched(path: object, *args: object, **kw: object) -> int:
        opened.append(str(path))
        return real_open(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", watched)
    assert wal_reached(db, 30, 4096) and not wal_reached(db, 10_000, 4096)
    monkeypatch.undo()
    assert opened == []
    con.close()


def test_a_checkpointer_stops_at_once_when_never_kicked(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    sqlite3.connect(db).close()
    c = WalCheckpointer(db)
    c.stop()
    assert c.checkpoints == 0 and not _wal_threads()


def test_commits_survive_a_kill_after_background_checkpoints(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    stdout = run_killed_writer(KILLED_WRITER, db)
    assert int(stdout.split()[1]) >= 3
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with LogReader(db) as reader:
        kinds = [e.kind.value for e in reader.iter_events(RUN)]
    assert kinds.count("artifact.published") == 320
