"""Commits on the loop's own thread (``log/thread_drain.py``, ``loop_wait.py``):
behaviour, never speed.

On a run's loop (precise timers), units are held until the loop's next select;
if the loop would then only wait, it commits them itself, else they go to the
writer's thread. What must hold either way: a unit is in the log when its
``append`` returns (and survives a SIGKILL right after), units commit in the
order they were queued, units of one busy stretch share a commit, a paid unit
is synced, a failed commit reaches its waiters, and the loop never waits for
a write lock another connection holds.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flock_es.domain.events import Event, EventKind, ModelCalled, make_event
from flock_es.errors import RunOwnedError
from flock_es.log import Durability, LogReader, LogWriter, thread_drain
from flock_es.log.ports import Lease
from flock_es.log.thread_drain import HOLD_MAX, INLINE_MAX_EVENTS, RELEASE_AT
from flock_es.models.precise_timers import make_timers_precise
from tests.log_contract import RUN, artifact, started

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll and timerfd")
pytestmark = linux


def _paid(i: int) -> Event:
    body = ModelCalled(
        task_id=f"t{i}", agent="a", call_index=0, model="m", request={}, response="x"
    )
    return make_event(RUN, EventKind.MODEL_CALLED, body, time.time())


def _ids(db: Path) -> list[object]:
    with LogReader(db) as reader:
        return [e.body.get("id", e.body.get("task_id")) for e in reader.iter_events(RUN)][1:]


async def _ticking(stop: asyncio.Event, every: float = 0.0002) -> int:
    """Keep a timer due within a fraction of a millisecond: the loop is never idle."""
    ticks = 0
    while not stop.is_set():
        await asyncio.sleep(every)
        ticks += 1
    return ticks


async def test_an_idle_loop_commits_an_awaited_unit_itself(tmp_path: Path) -> None:
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    await w.append([artifact(1)])
    assert _ids(db) == [artifact(1).body["id"]]  # in the log when append returns
    assert w.inline_commits == w.commits == 2
    await w.close()


async def test_a_large_unit_is_committed_by_the_thread_even_on_an_idle_loop(
    tmp_path: Path,
) -> None:
    # A big publish's commit must not block the loop's timers (lease renewals, the
    # progress line): above INLINE_MAX_EVENTS the thread commits it, the loop stays free.
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    await w.append([artifact(i) for i in range(INLINE_MAX_EVENTS + 1)])
    assert w.inline_commits == 1 and w.commits == 2  # run.started inline, the big one not
    assert len(_ids(db)) == INLINE_MAX_EVENTS + 1
    await w.close()


def _committed_within(w: LogWriter, commits: int, seconds: float = 5.0) -> bool:
    """Whether ``w`` reaches ``commits`` while this (the loop's) thread blocks in sleeps:
    the loop never gets to look for I/O meanwhile (one long callback)."""
    deadline = time.monotonic() + seconds
    while w.commits < commits and time.monotonic() < deadline:
        time.sleep(0.001)
    return w.commits >= commits


async def test_a_large_unit_goes_to_the_thread_while_the_loop_is_still_busy(
    tmp_path: Path,
) -> None:
    # Queued in the middle of a long stretch of callbacks (inline chunks of agent
    # runs), a decided unit is not held until the stretch ends: the thread commits it
    # meanwhile, and the runs it schedules can start as soon as the stretch is over.
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    before = w.commits
    w.enqueue([artifact(i) for i in range(RELEASE_AT)])
    assert _committed_within(w, before + 1)
    # Small units are held, but one that someone waits for not past HOLD_MAX: it
    # takes them to the thread.
    w.enqueue([artifact(RELEASE_AT)])
    time.sleep(HOLD_MAX * 2)
    waited = w.submit([artifact(RELEASE_AT + 1)])
    assert _committed_within(w, before + 2)
    await waited
    await w.close()
    assert len(_ids(db)) == RELEASE_AT + 2


async def test_units_nobody_waits_for_stay_held_while_the_loop_is_busy(tmp_path: Path) -> None:
    # Tasks starting one after another in one stretch of callbacks (200 model agents),
    # each with a task.started nobody waits for: one commit once the stretch is over,
    # not one to the thread per HOLD_MAX while the starts still need the GIL.
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    before = w.commits
    for i in range(5):
        w.enqueue([artifact(i)])
        time.sleep(HOLD_MAX * 2)
    assert w.commits == before and _ids(db) == []  # still held
    await asyncio.sleep(0.05)
    assert w.commits == before + 1
    await w.close()
    assert len(_ids(db)) == 5


async def test_a_paid_unit_is_synced_on_the_loop_or_on_the_thread(tmp_path: Path) -> None:
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db, durability=Durability.FULL)
    await w.append([started()])
    await w.append([_paid(1)])  # nothing else to do: the loop syncs it itself
    assert (w.inline_commits, w.synced_commits) == (2, 1)
    stop = asyncio.Event()
    ticker = asyncio.ensure_future(_ticking(stop))
    await w.append([_paid(2)])  # a timer always due soon: the thread syncs it
    stop.set()
    await ticker
    assert (w.inline_commits, w.synced_commits) == (2, 2)
    await w.close()
    assert _ids(db) == ["t1", "t2"]


async def test_paid_units_stay_held_past_hold_max_and_share_one_synced_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Eight analysts' answers, processed one after another, span more than HOLD_MAX:
    # units that carry a paid answer stay held up to HOLD_MAX_SYNCED (here, for as
    # long as the test needs), so the loop makes the one synced commit itself once it
    # would only wait, instead of a thread that cannot run while the loop is busy.
    monkeypatch.setattr(thread_drain, "HOLD_MAX_SYNCED", 60.0)
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db, durability=Durability.FULL)
    await w.append([started()])
    before, synced, inline = w.commits, w.synced_commits, w.inline_commits
    w.enqueue([_paid(1)])
    time.sleep(HOLD_MAX * 3)  # one long callback: the loop never looks for I/O
    done = w.submit([artifact(2)])
    assert not _committed_within(w, before + 1, seconds=HOLD_MAX * 20)  # still held
    await done
    assert w.commits == before + 1 and w.synced_commits == synced + 1
    assert w.inline_commits == inline + 1  # the loop committed them itself
    await w.close()
    assert _ids(db) == ["t1", artifact(2).body["id"]]


async def test_units_of_one_busy_stretch_share_a_commit(tmp_path: Path) -> None:
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    before = w.commits
    await asyncio.gather(*(w.append([artifact(i)]) for i in range(8)))
    assert w.commits == before + 1
    await w.close()
    assert _ids(db) == [artifact(i).body["id"] for i in range(8)]


@pytest.mark.parametrize("seed", range(4))
async def test_units_commit_in_the_order_queued(tmp_path: Path, seed: int) -> None:
    """Units awaited or not, paid or not, with the loop idle or busy: the log holds
    them in the order they were queued, whichever thread committed them."""
    assert make_timers_precise(asyncio.get_running_loop())
    rng = random.Random(seed)
    db = tmp_path / "w.db"
    w = await LogWriter.open(db, durability=Durability.FULL)
    await w.append([started()])
    stop = asyncio.Event()
    ticker: asyncio.Future[int] | None = None
    expected: list[object] = []
    for i in range(60):
        if rng.random() < 0.15:  # switch between an idle and a busy loop
            if ticker is None:
                stop.clear()
                ticker = asyncio.ensure_future(_ticking(stop))
            else:
                stop.set()
                await ticker
                ticker = None
        unit = [_paid(i)] if rng.random() < 0.3 else [artifact(i)]
        expected.append(unit[0].body.get("id", unit[0].body.get("task_id")))
        if rng.random() < 0.5:
            w.enqueue(unit)
        else:
            await w.append(unit)
        if rng.random() < 0.2:
            await asyncio.sleep(0)
    if ticker is not None:
        stop.set()
        await ticker
    await w.close()
    assert _ids(db) == expected
    assert 0 < w.inline_commits < w.commits  # both threads committed some


async def test_units_are_settled_in_commit_order_whichever_thread_commits(
    tmp_path: Path,
) -> None:
    """The thread commits a unit and hands its outcome to the loop; a unit queued after
    it, which the loop could commit itself once the thread is free, is still settled
    (and so acted on: ``Kernel.submit``) after it, however late the hand-over lands."""
    loop = asyncio.get_running_loop()
    assert make_timers_precise(loop)
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    handed = threading.Event()
    forward = loop.call_soon_threadsafe

    def late(fn: Any, *args: Any, **kw: Any) -> Any:  # the writer thread's hand-over, late
        if threading.current_thread() is not threading.main_thread() and not handed.is_set():
            handed.set()
            time.sleep(0.05)
        return forward(fn, *args, **kw)

    loop.call_soon_threadsafe = late  # type: ignore[assignment]
    order: list[str] = []
    big = w.submit([artifact(i) for i in range(RELEASE_AT)])  # to the thread at once
    big.add_done_callback(lambda _: order.append("first"))
    while not handed.is_set():
        await asyncio.sleep(0.001)
    small = w.submit([artifact(RELEASE_AT)])  # the loop is idle and the thread free
    small.add_done_callback(lambda _: order.append("second"))
    await asyncio.gather(big, small)
    loop.call_soon_threadsafe = forward  # type: ignore[method-assign]
    await w.close()
    assert order == ["first", "second"]
    assert _ids(db) == [artifact(i).body["id"] for i in range(RELEASE_AT + 1)]


async def test_a_failed_commit_on_the_loop_reaches_its_waiter(tmp_path: Path) -> None:
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    await w.close()
    stranger = Lease.mine(RUN)  # never claimed: the log names no such owner
    w = await LogWriter.open(db, fence=stranger)
    with pytest.raises(RunOwnedError):
        await w.append([artifact(1)])
    assert w.inline_commits == 0
    await w.close()
    assert _ids(db) == []


async def test_the_loop_never_waits_for_a_lock_another_connection_holds(tmp_path: Path) -> None:
    assert make_timers_precise(asyncio.get_running_loop())
    db = tmp_path / "w.db"
    w = await LogWriter.open(db)
    await w.append([started()])
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        pending = asyncio.ensure_future(w.append([artifact(1)]))
        ticks = 0
        for _ in range(20):  # the loop goes on while the thread waits for the lock
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and not pending.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    await pending
    assert w.inline_commits == 1  # only the first: the locked one went to the thread
    # And the loop commits again once the lock is free: once the thread that waited for
    # it is free too, which under load may be a little after ``pending`` is settled (it
    # hands its outcome over before it is free), so a unit or two may still go to it.
    n = 2
    while w.inline_commits == 1 and n < 50:
        await asyncio.sleep(0.01)
        await w.append([artifact(n)])
        n += 1
    assert w.inline_commits == 2
    await w.close()
    assert _ids(db) == [artifact(i).body["id"] for i in range(1, n)]


KILLED = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from flock_es.domain.events import ArtifactPublished, EventKind, RunStarted, make_event
    from flock_es.log import LogWriter
    from flock_es.models.precise_timers import make_timers_precise

    RUN = "r-inline"

    async def main():
        make_timers_precise(asyncio.get_running_loop())
        w = await LogWriter.open(sys.argv[1])
        await w.append([make_event(RUN, EventKind.RUN_STARTED,
                                   RunStarted(model="offline", agents=[]), time.time())])
        i = 0
        while True:
            body = ArtifactPublished(id=f"a-{i}", type="Seed", payload={"i": i})
            await w.append([make_event(RUN, EventKind.ARTIFACT_PUBLISHED, body, time.time())])
            os.write(1, f"{i} {w.inline_commits}\\n".encode())  # acknowledged: durable
            i += 1

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_an_acknowledged_unit_survives_a_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked, inline = -1, 0
    for line in proc.stdout:
        acked, inline = (int(x) for x in line.split())
        if acked >= 200:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert acked >= 200 and inline > 0  # the loop committed some of them itself
    con = sqlite3.connect(db)
    try:
        ids = {r[0] for r in con.execute("SELECT id FROM artifacts WHERE run_id = 'r-inline'")}
    finally:
        con.close()
    assert {f"a-{i}" for i in range(acked + 1)} <= ids
