"""Eager stepping of agent runs (runtime/eager.py) and the chunks of function agents
that use it: runs that never wait share one task and one commit; runs that wait
get a task of their own and never hold up the rest of their chunk."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.log import LogReader
from flock_es.projection.fold import fold
from flock_es.runtime.eager import Suspended, step

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def _quick() -> int:
    return 7


async def _waits(gate: asyncio.Event) -> str:
    VAR.set("inside")
    await gate.wait()
    return VAR.get()


async def _fails() -> None:
    raise ValueError("boom")


async def test_a_run_that_never_waits_finishes_on_its_first_step() -> None:
    done, value, _ = step(_quick())
    assert done and value == 7


async def test_a_run_that_waits_is_finished_by_a_task_in_its_own_context() -> None:
    gate = asyncio.Event()
    done, rest, ctx = step(_waits(gate))
    assert not done and isinstance(rest, Suspended)

    async def finish() -> str:
        return await rest

    task = asyncio.get_running_loop().create_task(finish(), context=ctx)
    await asyncio.sleep(0)
    assert not task.done()
    assert VAR.get() == "unset"  # the run's context is its own
    gate.set()
    assert await task == "inside"


async def test_a_first_step_that_raises_propagates() -> None:
    with pytest.raises(ValueError, match="boom"):
        step(_fails())


async def test_cancelling_the_task_cancels_the_suspended_run() -> None:
    gate = asyncio.Event()
    done, rest, ctx = step(_waits(gate))
    assert not done and isinstance(rest, Suspended)

    async def finish() -> str:
        return await rest

    task = asyncio.get_running_loop().create_task(finish(), context=ctx)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@flock_type
class Ping(BaseModel):
    n: int


@flock_type
class Pong(BaseModel):
    who: str
    n: int


async def test_a_waiting_run_never_holds_up_its_chunk(db_path: Path) -> None:
    """``waiter`` waits for ``setter``, which comes after it in the same chunk: run in
    turn, the chunk would wait forever; stepped, both finish."""
    flock = Flock(db=db_path)
    gate = asyncio.Event()

    async def waiter(p: Ping) -> Pong:
        await gate.wait()
        return Pong(who="waiter", n=p.n)

    async def setter(p: Ping) -> Pong:
        gate.set()
        return Pong(who="setter", n=p.n)

    def plain(p: Ping) -> Pong:
        return Pong(who="plain", n=p.n)

    flock.agent("a_waiter").consumes(Ping).publishes(Pong).with_function(waiter)
    flock.agent("b_setter").consumes(Ping).publishes(Pong).with_function(setter)
    flock.agent("c_plain").consumes(Ping).publishes(Pong).with_function(plain)
    await flock.publish(Ping(n=1))
    assert await flock.run_until_idle(timeout=10)
    await flock.close()
    pongs = await flock.store.get_by_type(Pong)
    assert sorted(p.who for p in pongs) == ["plain", "setter", "waiter"]
    with LogReader(db_path) as r:
        log = list(r.events(flock.run_id))
    evs = [(e.kind.value, str(e.body.get("task_id")), e.body.get("agent")) for e in log]
    tasks = {t: a for k, t, a in evs if k == "task.scheduled"}
    assert len(tasks) == 3
    for t, agent in tasks.items():
        mine = [k for k, tid, _ in evs if tid == t and k.startswith("task.")]
        if agent == "a_waiter":  # it waited: its start is recorded before its outcome
            assert mine == ["task.scheduled", "task.started", "task.completed"]
        else:  # done on its first step: the completion is its start too
            assert mine == ["task.scheduled", "task.completed"]
    state = fold(log)
    for t in tasks:  # the fold starts every one of them, with or without task.started
        view = state.tasks[t]
        assert view.attempt == 1 and view.started_at is not None and view.finished_at is not None
        assert view.started_at <= view.finished_at


async def test_plain_runs_each_get_their_own_context_and_any_awaitable(db_path: Path) -> None:
    """Plain function agents are called directly (``runtime/inline_runs.py``), as the
    executor would run them: each run in a context of its own, a returned awaitable
    that is no coroutine awaited, ``ctx`` given to a function that takes it, and a run
    that fails recorded as started (at its start) and failed."""
    flock = Flock(db=db_path)
    seen: list[str] = []

    def setter(p: Ping) -> Pong:
        seen.append(VAR.get())
        VAR.set(f"run {p.n}")  # must not leak into the next run of the chunk
        return Pong(who="setter", n=p.n)

    def later(p: Ping) -> asyncio.Future[Pong]:
        fut: asyncio.Future[Pong] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, Pong(who="later", n=p.n))
        return fut

    def with_ctx(p: Ping, ctx: object) -> Pong:
        return Pong(who=f"ctx {type(ctx).__name__}", n=p.n)

    def broken(p: Ping) -> Pong:
        raise ValueError("broken")

    flock.agent("a_setter").consumes(Ping).publishes(Pong).with_function(setter)
    flock.agent("b_later").consumes(Ping).publishes(Pong).with_function(later)
    flock.agent("c_ctx").consumes(Ping).publishes(Pong).with_function(with_ctx)
    flock.agent("d_broken").consumes(Ping).publishes(Pong).with_function(broken)
    await flock.publish_many([Ping(n=1), Ping(n=2)])
    assert await flock.run_until_idle(timeout=10)
    await flock.close()
    assert seen == ["unset", "unset"]
    pongs = await flock.store.get_by_type(Pong)
    assert sorted(p.who for p in pongs) == ["ctx AgentContext"] * 2 + ["later"] * 2 + ["setter"] * 2
    with LogReader(db_path) as r:
        log = list(r.events(flock.run_id))
    failed = [e for e in log if e.kind.value == "task.failed"]
    assert len(failed) == 2
    for f in failed:
        started = [
            e
            for e in log
            if e.kind.value == "task.started" and e.body["task_id"] == f.body["task_id"]
        ]
        assert len(started) == 1 and started[0].seq < f.seq  # type: ignore[operator]
        assert started[0].ts <= f.ts and started[0].body["attempt"] == 1


class Unregistered(BaseModel):
    n: int


async def test_plain_runs_record_every_shape_of_output_alike(db_path: Path) -> None:
    """A plain run's output of a declared class (``def`` or ``async def``) takes the
    short way past ``normalise_outputs``; a list, None, a subclass (its own name: not
    declared), an undeclared class and an unregistered one take the long way, and
    come out as they did."""

    class SubPong(Pong):
        pass

    flock = Flock(db=db_path)

    def one(p: Ping) -> Pong:
        return Pong(who="one", n=p.n)

    async def later(p: Ping) -> Pong:
        return Pong(who="async", n=p.n)

    def sub(p: Ping) -> Pong:
        return SubPong(who="sub", n=p.n)

    def two(p: Ping) -> list[Pong]:
        return [Pong(who="two", n=p.n), Pong(who="two", n=p.n + 1)]

    def none(p: Ping) -> None:
        return None

    def undeclared(p: Ping) -> Ping:
        return Ping(n=p.n)

    def unknown(p: Ping) -> Unregistered:
        return Unregistered(n=p.n)

    for name, fn in [("one", one), ("later", later), ("sub", sub), ("two", two)]:
        flock.agent(name).consumes(Ping).publishes(Pong).with_function(fn)
    flock.agent("none").consumes(Ping).publishes(Pong).with_function(none)
    flock.agent("undeclared").consumes(Ping).publishes(Pong).with_function(undeclared)
    flock.agent("unknown").consumes(Ping).with_function(unknown)  # publishes nothing named
    for n in (1, 10):  # twice: the second unregistered output is refused too
        await flock.publish(Ping(n=n))
        assert await flock.run_until_idle(timeout=10)
    await flock.close()
    pongs = await flock.store.get_by_type(Pong)
    assert sorted((p.who, p.n) for p in pongs) == sorted(
        (who, n + k)
        for n in (1, 10)
        for who, k in [("one", 0), ("async", 0), ("two", 0), ("two", 1)]
    )
    with LogReader(db_path) as r:
        state = fold(r.events(flock.run_id))
    failed = {t.agent: t.error or "" for t in state.tasks.values() if t.error}
    assert set(failed) == {"sub", "undeclared", "unknown"}
    assert "produced SubPong, but publishes only Pong" in failed["sub"]
    assert "publishes only Pong" in failed["undeclared"]
    assert "'Unregistered' is not registered" in failed["unknown"]
    assert state.agents["none"].done == 2 and state.agents["unknown"].failed == 2
