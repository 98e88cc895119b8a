"""SIGKILL a real ``flock-es run`` with gates half full, resume it, and count every firing.

The program (tests/programs/gates_crash.py) leaves a join group, a count gate
and a batch half full while one agent is still running; the test kills the
process at that point. After ``flock-es resume`` (and, for the gates, a second
in-process resume that publishes the missing halves), every gate must have
fired exactly once per complete set, with the right members, and no artifact
may be lost or consumed twice.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from flock_es.log import LogReader
from flock_es.projection import fold
from flock_es.runtime.program import load_program
from flock_es.runtime.resume import prepare, start_resumed
from tests.conftest import CLI, ROOT, cli_env, run_cli

PROGRAM = ROOT / "tests" / "programs" / "gates_crash.py"


def _events(db: Path) -> list[tuple[str, dict[str, object]]]:
    if not db.exists():
        return []
    try:
        with LogReader(db) as r:
            runs = r.runs()
            if not runs:
                return []
            return [(e.kind.value, e.body) for e in r.events(runs[0].run_id)]
    except Exception:  # the file is being created
        return []


def run_and_kill(db: Path, tmp: Path, env: dict[str, str], ready) -> str:  # type: ignore[no-untyped-def]
    """Start ``flock-es run``, wait until ``ready(events)`` holds in the log, SIGKILL it."""
    out = (tmp / "run.out").open("w")
    proc = subprocess.Popen(
        [*CLI, "run", str(PROGRAM), "--db", str(db), "-q"],
        cwd=tmp,
        env=cli_env(env),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready(_events(db)):
            assert proc.poll() is None, (tmp / "run.out").read_text()
            assert time.monotonic() < deadline, "the run never reached the crash point"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        out.close()
    assert proc.returncode == -signal.SIGKILL
    with LogReader(db) as r:
        return r.runs()[0].run_id


def firings(db: Path, run_id: str) -> list[tuple[str, tuple[str, ...]]]:
    with LogReader(db) as r:
        evs = r.events(run_id)
    return [
        (str(e.body["payload"]["agent"]), tuple(e.body["payload"]["members"]))
        for e in evs
        if e.kind.value == "artifact.published" and e.body["type"] == "Joined"
    ]


def assert_no_duplicates(db: Path, run_id: str) -> None:
    with LogReader(db) as r:
        evs = r.events(run_id)
    completed = Counter(e.body["task_id"] for e in evs if e.kind.value == "task.completed")
    assert all(n == 1 for n in completed.values()), completed
    published = Counter(e.body["id"] for e in evs if e.kind.value == "artifact.published")
    assert all(n == 1 for n in published.values())
    state = fold(evs)
    # No artifact sits in a gate and in a fired task at once, and none fired twice per agent.
    for (agent, sub), gate in state.gates.items():
        used = [
            i
            for t in state.tasks.values()
            if t.agent == agent and t.sub_index == sub
            for i in t.inputs
        ]
        assert len(used) == len(set(used))
        waiting = {m for g in gate.groups.values() for m in g.members}
        assert not waiting & set(used), agent


def crash_point(events: list[tuple[str, dict[str, object]]]) -> bool:
    done = Counter(str(b["agent"]) for k, b in events if k == "task.completed")
    started = {str(b["agent"]) for k, b in events if k == "task.started"}
    return (
        done["joiner"] == 1
        and done["counter"] == 1
        and done["batcher"] == 1
        and ("slow" in started)
        and sum(1 for k, _ in events if k == "batch.buffered") == 3
    )


async def test_killed_mid_join_and_batch_resumes_with_every_gate_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "crash.db"
    run_id = run_and_kill(db, tmp_path, {"GATES_TEST_BLOCK": "1"}, crash_point)
    with LogReader(db) as r:
        state = fold(r.events(run_id))
    assert state.finished_status is None
    assert {g.key for gv, g in state.waiting_gates() if gv.agent == "joiner"} == {"k2", "k3"}
    assert [len(b.members) for b in state.batches.values()] == [1]
    assert firings(db, run_id) == [
        ("joiner", ("L1", "R1")),
        ("counter", ("L1", "L2", "R1")),
        ("batcher", ("I1", "I2", "I3")),
    ]

    # 1. The real CLI resumes: the killed task re-runs, the gates stay as they were.
    out = run_cli(["resume", run_id, "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    with LogReader(db) as r:
        state = fold(r.events(run_id))
    assert [t.status.value for t in state.tasks.values() if t.agent == "slow"] == ["completed"]
    assert {g.key for gv, g in state.waiting_gates() if gv.agent == "joiner"} == {"k2", "k3"}
    assert len(firings(db, run_id)) == 3

    # 2. Resume again in-process and publish the missing halves: the gates complete.
    monkeypatch.delenv("GATES_TEST_BLOCK", raising=False)
    prog = load_program(PROGRAM)
    prepare(prog.flock, state, db, None, PROGRAM)
    await start_resumed(prog.flock)
    m = prog.module
    await prog.flock.publish(m.Right(key="k2", n=2))
    await prog.flock.publish(m.Right(key="k3", n=3))
    await prog.flock.publish(m.Left(key="k9", n=9))
    for n in (5, 6):
        await prog.flock.publish(m.Item(n=n))
    await prog.flock.run_until_idle()
    await prog.flock.close()

    got = firings(db, run_id)
    assert Counter(got) == Counter(
        [
            ("joiner", ("L1", "R1")),
            ("joiner", ("L2", "R2")),
            ("joiner", ("L3", "R3")),
            ("counter", ("L1", "L2", "R1")),
            ("counter", ("L3", "L9", "R2")),
            ("batcher", ("I1", "I2", "I3")),
            ("batcher", ("I4", "I5", "I6")),
        ]
    )
    assert_no_duplicates(db, run_id)
    with LogReader(db) as r:
        final = fold(r.events(run_id))
    # Nothing dropped: what did not fire still waits, with its identity.
    waiting = {
        (gv.agent, g.key): sorted(final.artifacts[a].payload["n"] for a in g.members)
        for gv, g in final.waiting_gates()
    }
    assert waiting == {("joiner", "k9"): [9], ("counter", ""): [3]}


def timer_point(events: list[tuple[str, dict[str, object]]]) -> bool:
    done = Counter(str(b["agent"]) for k, b in events if k == "task.completed")
    started = {str(b["agent"]) for k, b in events if k == "task.started"}
    memo = any(k == "artifact.published" and b["type"] == "Memo" for k, b in events)
    return (
        done["joiner"] == 1
        and "slow" in started
        and memo
        and (sum(1 for k, _ in events if k == "batch.buffered") == 4)
    )


@pytest.mark.slow
def test_killed_with_armed_timers_resume_fires_each_timer_once(tmp_path: Path) -> None:
    db = tmp_path / "timers.db"
    env = {"GATES_TEST_BLOCK": "1", "GATES_TEST_TIMERS": "1"}
    run_id = run_and_kill(db, tmp_path, env, timer_point)
    at_crash = {k for k, _ in _events(db)}
    out = run_cli(
        ["resume", run_id, "--db", db, "-q"], cwd=tmp_path, env={"GATES_TEST_TIMERS": "1"}
    )
    assert out.returncode == 0, out.stdout + out.stderr
    with LogReader(db) as r:
        evs = r.events(run_id)
    flushed = [
        e.body
        for e in evs
        if e.kind.value == "task.scheduled" and e.body["reason"] == "batch_timeout"
    ]
    assert len(flushed) == 1 and len(flushed[0]["inputs"]) == 4
    assert ("batcher", ("I1", "I2", "I3", "I4")) in firings(db, run_id)
    expired = sorted(str(e.body["key"]) for e in evs if e.kind.value == "join.expired")
    assert expired == ["k2", "k3"]
    # The AfterVisibility release is re-armed too: released once, its consumer ran once.
    assert sum(1 for e in evs if e.kind.value == "artifact.released") == 1
    kinds = [e.kind.value for e in evs]
    if not at_crash & {"artifact.released", "join.expired"}:  # the usual case: timers were armed
        resumed = kinds.index("run.resumed")
        assert kinds.index("artifact.released") > resumed
        assert kinds.index("join.expired") > resumed
    assert firings(db, run_id).count(("embargo", ("M1",))) == 1
    assert_no_duplicates(db, run_id)
    state = fold(evs)
    assert not state.batches
    # The count gate has no window: its surplus L3 still waits, it is not dropped.
    assert [(gv.agent, len(g.members)) for gv, g in state.waiting_gates()] == [("counter", 1)]
