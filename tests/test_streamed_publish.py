"""A large publish_many is one transaction built and written a chunk at a time
(runtime/publish_stream.py, log/event_stream.py): all of it is durable, or none.

On real files and a real PostgreSQL: a process SIGKILLed while the transaction
is open leaves nothing of the publish; an object that fails to serialise
halfway, or a generator that fails, leaves nothing either, and the run goes
on; a generator is read as the publish streams; a streamed publish on
PostgreSQL runs and replays like SQLite's.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, field_serializer

from flock_es import Flock, flock_type
from flock_es.log import LogReader
from flock_es.log.backends import open_reader
from flock_es.projection.fold import fold
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.engine import DEFER_AT
from flock_es.runtime.publish_stream import STREAM_CHUNK
from flock_es.runtime.replay import Replayer
from tests.conftest import ROOT, kill_cli_when
from tests.pg import pg_url  # noqa: F401  (fixture)

PROGRAM = ROOT / "tests" / "programs" / "streamed_publish.py"
N = 3 * STREAM_CHUNK + 10
BAD = STREAM_CHUNK + 5  # in the second chunk: the first is written by then


@flock_type
class TItem(BaseModel):
    n: int
    bad: bool = False

    @field_serializer("bad")
    def _bad(self, bad: bool) -> bool:
        if bad:
            raise ValueError("this item cannot be serialised")
        return bad


@flock_type
class TDone(BaseModel):
    n: int


def program(db: str | Path) -> Flock:
    flock = Flock(db=db)
    flock.agent("t").consumes(TItem).publishes(TDone).with_function(lambda x: TDone(n=x.n))
    return flock


def _count(db: str | Path, kind: str) -> int:
    with open_reader(db) as reader:
        run = reader.latest_run()
        assert run is not None
        return sum(1 for e in reader.iter_events(run.run_id) if e.kind.value == kind)


def _write_locked(db: Path) -> bool:
    """Whether another connection holds the database's write lock (a transaction open)."""
    con = sqlite3.connect(db, timeout=0)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        con.close()


def _write_locked_soon(db: Path, within: float = 10.0) -> bool:
    """``_write_locked``, waiting up to ``within`` s for it: the writer's thread begins the
    transaction once it takes the first chunk, which a busy or cold process (the first
    run of a fresh clone) may do after the generator has gone past it. The generator
    waits here, on the loop's thread; the writer's thread goes on meanwhile."""
    deadline = time.monotonic() + within
    while not _write_locked(db):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.slow  # a real process, killed
def test_a_kill_while_the_publish_streams_leaves_none_of_it(tmp_path: Path) -> None:
    db, mark = tmp_path / "stream.db", tmp_path / "mark"
    at = 2 * STREAM_CHUNK + 7  # chunks before it are handed to the open transaction
    env = {"STREAM_N": str(N), "STREAM_AT": str(at), "STREAM_MARK": str(mark)}
    locked: list[bool] = []

    def reached() -> bool:
        if not mark.exists():
            return False
        if not locked:  # asked again right before the kill
            time.sleep(0.2)  # the writer has taken what was handed over
            locked.append(_write_locked(db))
        return True

    assert kill_cli_when(["run", PROGRAM, "--db", db, "-q"], reached, env=env)
    assert locked == [True], "the publish's transaction was not open at the kill"
    with LogReader(db) as reader:
        run = reader.latest_run()
        assert run is not None
        state = fold(reader.iter_events(run.run_id))
        rows = reader.query("SELECT count(*) FROM artifacts WHERE run_id = ?", (run.run_id,))
    assert state.type_counts == {} and not state.undecided  # nothing of the publish
    assert rows == [(0,)]


@pytest.mark.slow  # a real process, to its end
def test_a_streamed_publish_commits_every_artifact(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    db = tmp_path / "stream.db"
    out = run_cli(["run", PROGRAM, "--db", db, "-q"], env={"STREAM_N": str(N)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert _count(db, "artifact.published") == 2 * N
    assert _count(db, "artifact.decided") == N


async def test_an_object_failing_halfway_leaves_none_of_the_publish(db_path: Path) -> None:
    await _fails_halfway_then_runs_on(program(db_path), db_path)


async def test_a_generator_is_read_as_the_publish_streams(db_path: Path) -> None:
    flock = program(db_path)
    open_while_reading: list[bool] = []

    def items(fail_at: int | None = None) -> Iterator[TItem]:
        for i in range(N):
            if i == 2 * STREAM_CHUNK + 5:  # the first chunks are in the open transaction
                open_while_reading.append(_write_locked_soon(db_path))
            if i == fail_at:
                raise RuntimeError("the source failed")
            yield TItem(n=i)

    with pytest.raises(RuntimeError, match="the source failed"):
        await flock.publish_many(items(fail_at=N - 1))
    assert _count(db_path, "artifact.published") == 0 and not flock.state.undecided
    ids = await flock.publish_many(items())
    assert len(ids) == N and open_while_reading == [True, True]
    assert await flock.run_until_idle()
    await flock.close()
    assert _count(db_path, "artifact.decided") == _count(db_path, "task.completed") == N


@flock_type
class Counted(BaseModel):
    """Counts its live instances: how many objects of a publish are still held."""

    n: int
    live: ClassVar[int] = 0

    def model_post_init(self, context: Any) -> None:
        type(self).live += 1

    def __del__(self) -> None:
        type(self).live -= 1


async def test_a_list_only_the_publish_holds_is_let_go_as_it_streams(db_path: Path) -> None:
    flock = Flock(db=db_path)
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(Counted.live)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    # A list built for the call, held by nothing else: read destructively
    # (runtime/publish_input.py), its objects go once written.
    await flock.publish_many([Counted(n=i) for i in range(N)])
    assert seen and min(seen) < N - STREAM_CHUNK
    # A list the program holds is read as it is and left as it was.
    named = [Counted(n=i) for i in range(N)]
    seen.clear()
    await flock.publish_many(named)
    watcher.cancel()
    assert min(seen) >= N and [c.n for c in named] == list(range(N))
    await flock.close()
    assert _count(db_path, "artifact.published") == 2 * N


async def test_a_streamed_publish_on_postgres(pg_url: str) -> None:  # noqa: F811
    await _fails_halfway_then_runs_on(program(pg_url), pg_url)


async def _fails_halfway_then_runs_on(flock: Flock, db: str | Path) -> None:
    items = [TItem(n=i, bad=i == BAD) for i in range(N)]
    with pytest.raises(ValueError, match="cannot be serialised"):
        await flock.publish_many(items)
    assert flock.state.type_counts == {} and not flock.state.undecided
    assert _count(db, "artifact.published") == 0
    # The run goes on: the same publish without the bad item commits whole.
    ids = await flock.publish_many([TItem(n=i) for i in range(N)])
    assert len(ids) == N > DEFER_AT and list(flock.state.undecided) == ids
    assert await flock.run_until_idle()
    run_id = flock.run_id
    await flock.close()
    assert _count(db, "artifact.published") == 2 * N
    assert _count(db, "artifact.decided") == _count(db, "task.completed") == N
    board = BoardSource(db, run_id)
    try:
        with open_reader(db) as reader:
            report = await Replayer(
                reader.iter_events(run_id), program(db).agents, board=board
            ).run()
    finally:
        board.close()
    assert report.identical, report.divergence
    assert report.decisions_checked >= N
