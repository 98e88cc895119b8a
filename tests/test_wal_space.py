"""The WAL written ahead (``log/wal_space.py``): behaviour and crash safety, never speed.

The writer of a ``full``-durability log extends a short WAL with zeros when it
opens. SQLite must read such a WAL as it reads any other: a process killed with
SIGKILL after its commits leaves a WAL with frames followed by zeros, and every
commit it acknowledged is there when the log is read again (the zeros end the
recovery like stale frames do), the file passes ``integrity_check``, and a new
writer appends after it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from pathlib import Path

from flock_es.log import Durability, LogReader, LogWriter
from flock_es.log.wal_space import WAL_ROOM, preallocate_wal
from tests.conftest import run_killed_writer
from tests.log_contract import RUN, artifact

KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time
    from flock_es.domain.events import EventKind, ModelCalled, make_event
    from flock_es.log import LogWriter
    from tests.log_contract import RUN, artifact, started

    async def main():
        w = await LogWriter.open(sys.argv[1])
        await w.append([started()])
        for i in range(40):
            paid = ModelCalled(task_id="t", agent="a", call_index=i, model="m",
                               request={}, response="x" * 300)
            await w.append([make_event(RUN, EventKind.MODEL_CALLED, paid, time.time()),
                            artifact(i)])
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close: the WAL stays as it is

    asyncio.run(main())
    """
)


def test_a_short_wal_is_extended_once(tmp_path: Path) -> None:
    wal = tmp_path / "x.db-wal"
    assert not preallocate_wal(wal)  # none yet: left alone
    wal.write_bytes(b"h" * 100)
    assert preallocate_wal(wal, 1 << 18)
    data = wal.read_bytes()
    assert len(data) == 1 << 18 and data[:100] == b"h" * 100 and not data[100:].strip(b"\0")
    assert not preallocate_wal(wal, 1 << 18)  # already that large


async def test_a_full_writer_writes_ahead_a_normal_one_does_not(tmp_path: Path) -> None:
    for durability, room in ((Durability.FULL, WAL_ROOM), (Durability.NORMAL, 0)):
        db = tmp_path / f"{durability}.db"
        w = await LogWriter.open(db, durability=durability)
        wal = Path(f"{db}-wal")
        assert (wal.stat().st_size >= WAL_ROOM) is (room > 0)
        await w.close()


def test_commits_survive_a_kill_over_the_zeros(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    run_killed_writer(KILLED_WRITER, db)
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size >= WAL_ROOM  # frames, then zeros: recovery must stop there
    with LogReader(db) as reader:
        kinds = [e.kind.value for e in reader.iter_events(RUN)]
    assert kinds.count("artifact.published") == 40
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (
        con.execute("SELECT count(*) FROM events WHERE kind = 'model.called'").fetchone()[0] == 40
    )
    con.close()

    async def more() -> None:
        w = await LogWriter.open(db)
        await w.append([artifact(100)])
        await w.close()

    asyncio.run(more())
    with LogReader(db) as reader:
        assert sum(e.kind.value == "artifact.published" for e in reader.iter_events(RUN)) == 41
