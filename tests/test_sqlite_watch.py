"""DataVersionWatch: a wait ends when another connection commits, at its timeout, or
when the watch closes; the event loop stays free meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from flock_es.log.sqlite_watch import DataVersionWatch


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    return path


def test_a_commit_by_another_process_wakes_the_wait(tmp_path: Path) -> None:
    path = _db(tmp_path)

    async def main() -> tuple[bool, bool, int]:
        watch = DataVersionWatch(path)
        try:
            assert await watch.wait(0.05) is False  # nothing committed: the timeout
            ticks = 0

            async def count() -> None:  # the loop runs other work while it waits
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            counter = asyncio.create_task(count())
            insert = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('INSERT INTO t VALUES (1)'); c.commit()"
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", insert)
            woke = await watch.wait(30.0)
            await proc.wait()
            counter.cancel()
            again = await watch.wait(0.05)  # seen: the same commit wakes no second wait
            return woke, again, ticks
        finally:
            await watch.close()

    woke, again, ticks = asyncio.run(main())
    assert woke and not again and ticks > 0


def test_close_ends_a_wait_in_progress(tmp_path: Path) -> None:
    path = _db(tmp_path)

    async def main() -> bool:
        watch = DataVersionWatch(path)
        waiting = asyncio.create_task(watch.wait(300.0))
        await asyncio.sleep(0.05)
        await watch.close()
        # Ended by the close (within a poll), not by its 300 s: a hang fails here.
        return await asyncio.wait_for(waiting, timeout=60)

    assert asyncio.run(main()) is False
