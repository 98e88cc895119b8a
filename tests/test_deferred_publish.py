"""A large publish_many: its artifacts commit at once, their matches are decided after.

More than ``DEFER_AT`` artifacts are committed in one transaction, flagged
``deferred``; the engine then decides them ``DECIDE_CHUNK`` at a time, each
unit an ``artifact.decided`` per artifact followed by what it causes, with at
most ``DECIDE_AHEAD`` units whose tasks are not all done. So the tasks pending
at once stay bounded (issue 14), a crash at any point loses nothing (resume
decides the rest), and replay re-decides each artifact at its
``artifact.decided``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.log import LogReader
from flock_es.projection.fold import fold
from flock_es.runtime.engine import DECIDE_AHEAD, DECIDE_CHUNK, DECIDE_FIRST, DEFER_AT
from flock_es.runtime.replay import Replayer
from tests.conftest import ROOT, kill_cli_when, run_cli

PROGRAM = ROOT / "tests" / "programs" / "deferred_publish.py"


@flock_type
class DItem(BaseModel):
    n: int


@flock_type
class DOut(BaseModel):
    n: int


def kinds(db: Path) -> Counter[str]:
    con = sqlite3.connect(db)
    try:
        return Counter(k for (k,) in con.execute("SELECT kind FROM events"))
    finally:
        con.close()


def program(db: Path, where: int = 2) -> Flock:
    flock = Flock(db=db)
    for name in ("even", "all"):
        keep = (lambda x: x.n % where == 0) if name == "even" else None
        flock.agent(name).consumes(DItem, where=keep).publishes(DOut).with_function(
            lambda x: DOut(n=x.n)
        )
    return flock


async def test_a_large_publish_commits_at_once_and_decides_in_bounded_units(
    db_path: Path,
) -> None:
    flock = program(db_path)
    open_at_commit: list[int] = []
    flock.add_listener(lambda _: open_at_commit.append(len(flock.state.pending_tasks())))
    n = DEFER_AT * 8
    ids = await flock.publish_many(DItem(n=i) for i in range(n))
    assert len(ids) == n and list(flock.state.undecided) == ids
    # Held by id only, read from the log when decided (or when asked: flock.artifacts()).
    assert not set(ids) & set(flock.state.artifacts)
    assert [v.id for v in flock.artifacts().get_many(ids)] == ids
    assert await flock.run_until_idle()
    await flock.close()
    got = kinds(db_path)
    assert got["artifact.published"] == n + n + n // 2  # the items and both agents' outputs
    assert got["artifact.decided"] == n
    assert got["task.scheduled"] == got["task.completed"] == n + n // 2
    # Never all pending at once: the decided units in flight bound them.
    assert max(open_at_commit) <= (DECIDE_AHEAD + 1) * DECIDE_CHUNK * 2 < n + n // 2
    with LogReader(db_path) as reader:
        state = fold(reader.iter_events(flock.run_id))
        report = await Replayer(reader.iter_events(flock.run_id), flock.agents).run()
    assert not state.undecided and not state.pending_tasks()
    assert report.identical, report.divergence
    assert report.decisions_checked >= n


async def test_a_publish_up_to_the_threshold_is_decided_in_its_own_transaction(
    db_path: Path,
) -> None:
    flock = program(db_path)
    await flock.publish_many(DItem(n=i) for i in range(DEFER_AT))
    await flock.run_until_idle()
    await flock.close()
    assert "artifact.decided" not in kinds(db_path)


async def test_replay_re_decides_a_deferred_artifact_at_its_decision(db_path: Path) -> None:
    flock = program(db_path, where=2)
    await flock.publish_many(DItem(n=i) for i in range(DEFER_AT + 10))
    await flock.run_until_idle()
    await flock.close()
    changed = program(db_path, where=3)  # the current code matches other items
    with LogReader(db_path) as reader:
        report = await Replayer(reader.iter_events(flock.run_id), changed.agents).run()
        decided = {
            e.seq
            for e in reader.iter_events(flock.run_id)
            if e.kind.value in ("artifact.decided", "task.scheduled")
        }
    assert not report.identical and report.divergence is not None
    assert report.divergence.seq in decided
    assert "triggers" in report.divergence.what


@pytest.mark.slow  # real processes: two runs killed, two resumes
@pytest.mark.parametrize("point", ["published", "half decided"])
def test_a_kill_between_the_publish_and_its_decisions_loses_nothing(
    tmp_path: Path, point: str
) -> None:
    n = 1200
    db = tmp_path / "deferred.db"
    env = {"DEFERRED_N": str(n)}

    def reached() -> bool:
        try:
            got = kinds(db)
        except sqlite3.Error:
            return False
        if point == "published":
            return got["artifact.published"] >= n
        return got["artifact.decided"] >= n // 2

    assert kill_cli_when(["run", PROGRAM, "--db", db, "-q"], reached, env=env)
    at_kill = kinds(db)
    assert at_kill["artifact.decided"] < n, "the kill came after every decision"
    out = run_cli(["resume", "latest", "--db", db, "-q"], env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    got = kinds(db)
    assert got["artifact.decided"] == n  # each artifact decided once, before or after
    assert got["task.scheduled"] == 2 * n
    with LogReader(db) as reader:
        events = list(reader.iter_events(reader.resolve_run("latest")))
    state = fold(events)
    assert state.finished_status == "completed" and state.resumed == 1
    assert not state.undecided and not state.pending_tasks()
    scheduled = [e.body["task_id"] for e in events if e.kind.value == "task.scheduled"]
    completed = [e.body["task_id"] for e in events if e.kind.value == "task.completed"]
    assert len(set(scheduled)) == len(scheduled) == 2 * n  # none scheduled twice
    assert sorted(completed) == sorted(scheduled)  # each done once
    outputs = Counter(
        (a.payload["n"], a.payload["by"]) for a in state.artifacts.values() if a.type == "Done"
    )
    assert set(outputs) == {(i, by) for i in range(n) for by in "ab"}
    assert set(outputs.values()) == {1}


async def test_units_are_decided_ahead_of_their_commits_and_run_only_once_durable(
    db_path: Path,
) -> None:
    """The decider queues each unit and decides the next without waiting for its
    commit (up to DECIDE_AHEAD units), and no task starts before its schedule is in
    the log: with the log's write lock held by another connection, units are decided
    and nothing runs; once it is free, all of it commits and runs, and replays."""
    import asyncio

    from flock_es.domain.events import TaskStatus

    flock = program(db_path)
    n = DEFER_AT * 4
    await flock.publish_many(DItem(n=i) for i in range(n))  # durable, none decided yet
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing: no commit lands
    try:
        await asyncio.sleep(0.3)
        decided = n - len(flock.state.undecided)
        assert decided > DECIDE_FIRST  # more than the first unit, none of them durable
        assert all(t.status is TaskStatus.SCHEDULED for t in flock.state.tasks.values())
        assert kinds(db_path)["task.scheduled"] == 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await flock.run_until_idle()
    await flock.close()
    got = kinds(db_path)
    assert got["artifact.decided"] == n and got["task.completed"] == n + n // 2
    with LogReader(db_path) as reader:
        report = await Replayer(reader.iter_events(flock.run_id), flock.agents).run()
    assert report.identical, report.divergence


async def test_one_slow_task_holds_back_no_other_unit(db_path: Path) -> None:
    """Only the units with tasks not done count against ``DECIDE_AHEAD``: a unit
    waiting on one slow task (a long model call, a retry after a 429) held back
    every unit behind it, and the whole publish waited for that one task."""
    import asyncio

    flock = Flock(db=db_path)
    done_before_slow: list[int] = []
    done = [0]

    async def work(x: DItem) -> DOut:
        if x.n == 0:
            await asyncio.sleep(1.0)  # long beside the rest (about 40 ms)
            done_before_slow.append(done[0])
        done[0] += 1
        return DOut(n=x.n)

    flock.agent("work").consumes(DItem).publishes(DOut).with_function(work)
    n = DEFER_AT * 4
    await flock.publish_many(DItem(n=i) for i in range(n))
    await flock.run_until_idle()
    await flock.close()
    assert done[0] == n
    assert done_before_slow == [n - 1]  # everything else ran while it waited
