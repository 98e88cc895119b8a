"""Routing, correlation, the self-trigger guard, the circuit breaker and priority."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from flock_es import AgentContext, Flock, flock_type
from flock_es.log import LogReader
from tests.conftest import run_cli


@flock_type
class Ping(BaseModel):
    n: int = 0
    note: str = ""


@flock_type
class Pong(BaseModel):
    n: int = 0
    by: str = ""


def log(db: Path, run_id: str) -> list[tuple[str, dict[str, object]]]:
    with LogReader(db) as r:
        return [(e.kind.value, e.body) for e in r.events(run_id)]


def ran(db: Path, run_id: str) -> list[str]:
    return [str(b["agent"]) for k, b in log(db, run_id) if k == "task.scheduled"]


async def test_from_agents_only_accepts_the_named_producers(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("alice").consumes(Ping).with_function(lambda p: Pong(n=p.n, by="alice")).publishes(
        Pong
    )
    flock.agent("bob").consumes(Ping).with_function(lambda p: Pong(n=p.n, by="bob")).publishes(Pong)
    seen: list[str] = []
    flock.agent("fan").consumes(Pong, from_agents=["bob"]).with_function(
        lambda p: seen.append(p.by)
    )
    await flock.publish(Ping(n=1))
    await flock.run_until_idle()
    await flock.close()
    assert seen == ["bob"]


async def test_tags_and_channels_route_published_artifacts(db_path: Path) -> None:
    flock = Flock(db=db_path)
    urgent: list[int] = []
    billing: list[int] = []
    every: list[int] = []
    flock.agent("urgent").consumes(Ping, tags={"urgent"}).with_function(
        lambda p: urgent.append(p.n)
    )
    flock.agent("billing").consumes(Ping, channels="billing").with_function(
        lambda p: billing.append(p.n)
    )
    flock.agent("all").consumes(Ping).with_function(lambda p: every.append(p.n))
    await flock.publish(Ping(n=1), tags=["urgent"])
    await flock.publish(Ping(n=2), tags={"billing", "misc"})
    await flock.publish(Ping(n=3))
    await flock.run_until_idle()
    await flock.close()
    assert urgent == [1] and billing == [2] and sorted(every) == [1, 2, 3]
    published = [b for k, b in log(db_path, flock.run_id) if k == "artifact.published"]
    assert published[0]["tags"] == ["urgent"]


async def test_outputs_inherit_the_correlation_id_of_their_inputs(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("echo").consumes(Ping).with_function(lambda p: Pong(n=p.n)).publishes(Pong)
    corr: list[str | None] = []

    def last(p: Pong, ctx: AgentContext) -> None:
        corr.append(ctx.correlation_id)

    flock.agent("last").consumes(Pong).with_function(last)
    await flock.publish(Ping(n=1), correlation_id="conv-42")
    aid = await flock.publish(Ping(n=2))
    await flock.run_until_idle()
    await flock.close()
    arts = {a.payload["n"]: a for a in await flock.store.get_artifacts_by_type(Pong)}
    assert arts[1].correlation_id == "conv-42"
    assert arts[2].correlation_id == aid  # an external artifact starts its own correlation
    assert sorted(c or "" for c in corr) == sorted(["conv-42", aid])


async def test_the_self_trigger_guard_is_on_by_default(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("loop").consumes(Ping).with_function(lambda p: Ping(n=p.n + 1)).publishes(Ping)
    await flock.publish(Ping(n=0))
    await flock.run_until_idle()
    await flock.close()
    assert ran(db_path, flock.run_id) == ["loop"]  # its own output did not feed it again
    assert len(await flock.store.get_by_type(Ping)) == 2


async def test_the_circuit_breaker_stops_a_runaway_loop_and_says_so(db_path: Path) -> None:
    flock = Flock(db=db_path, max_agent_iterations=5)
    flock.agent("loop").consumes(Ping).with_function(lambda p: Ping(n=p.n + 1)).publishes(
        Ping
    ).prevent_self_trigger(False)
    await flock.publish(Ping(n=0))
    await flock.run_until_idle()
    await flock.close()
    assert ran(db_path, flock.run_id) == ["loop"] * 5
    trips = [b for k, b in log(db_path, flock.run_id) if k == "circuit.tripped"]
    assert len(trips) == 1 and trips[0]["agent"] == "loop" and trips[0]["limit"] == 5
    assert flock.state.agents["loop"].tripped == 1


def test_the_run_summary_reports_a_tripped_breaker(tmp_path: Path) -> None:
    prog = tmp_path / "loop.py"
    prog.write_text(
        "from pydantic import BaseModel\n"
        "from flock_es import Flock, flock_type\n"
        "@flock_type\n"
        "class Tick(BaseModel):\n    n: int\n"
        "flock = Flock(max_agent_iterations=3)\n"
        "flock.agent('ticker').consumes(Tick).with_function(lambda t: Tick(n=t.n + 1))"
        ".publishes(Tick).prevent_self_trigger(False)\n"
        "async def main():\n    await flock.publish(Tick(n=0))\n"
    )
    out = run_cli(["run", prog, "--db", tmp_path / "x.db"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "circuit    breaker tripped for ticker: stopped after 3 runs" in out.stderr, out.stderr


async def test_priority_orders_waiting_tasks_when_concurrency_is_limited(db_path: Path) -> None:
    flock = Flock(db=db_path)
    order: list[str] = []
    gate = asyncio.Event()

    async def work(p: Ping) -> None:
        if p.note == "blocker":
            await gate.wait()
        order.append(p.note)

    flock.agent("worker").consumes(
        Ping, where=lambda p: p.note.startswith(("low", "blocker"))
    ).consumes(Ping, where=lambda p: p.note.startswith("high"), priority=10).with_function(
        work
    ).max_concurrency(1)
    await flock.publish(Ping(note="blocker"))
    for i in range(3):
        await flock.publish(Ping(note=f"low{i}"))
        await flock.publish(Ping(note=f"high{i}"))
    await asyncio.sleep(0)
    gate.set()
    await flock.run_until_idle()
    await flock.close()
    assert order == ["blocker", "high0", "high1", "high2", "low0", "low1", "low2"]
    spec = flock.state.agents["worker"].subscriptions[1]
    assert spec["priority"] == 10
