"""flock-core 0.5.7's side of ``bench_core.py --compare``: one workload, one process.

Run by the flock-core interpreter (its own venv; flock-es is not importable
there), never imported by flock-es. Prints one JSON line:
``{"workload": ..., "value": ..., "unit": ...}``.

    FLOCK_AUTO_TRACE=false /path/to/flockcore/bin/python bench/_flock_core_side.py b

flock-core has no plain-function agents: a custom ``EngineComponent`` whose
``evaluate`` returns the output (or sleeps first) is the closest equivalent,
and runs in flock-core's default in-memory store.
"""

from __future__ import annotations

import os

os.environ.setdefault("FLOCK_AUTO_TRACE", "false")

import asyncio
import json
import statistics
import sys
import time
from typing import Any

import flock.orchestrator as _orch
from flock import Flock, flock_type
from flock.components import AgentComponent, EngineComponent
from flock.runtime import EvalInputs, EvalResult
from flock.subscription import BatchSpec
from pydantic import BaseModel

# flock-core prints (and clears the screen for) a banner on every publish.
_orch.init_console = lambda *a, **k: None

NO_BREAKER = 10**9


class _Quiet(AgentComponent):  # type: ignore[misc]
    """Takes the place of the default output utility, which draws a rich table per
    agent run (its ``no_output`` setting is not consulted in 0.5.7)."""


def quiet() -> AgentComponent:
    return _Quiet()


# The same types as bench/_scale_program.py's, registered with flock-core's own
# flock_type: each library has its registry, so the two sides cannot share a class.
@flock_type
class Item(BaseModel):
    n: int


@flock_type
class Out(BaseModel):
    n: int


@flock_type
class BreakingNews(BaseModel):
    headline: str
    raw_story: str


@flock_type
class NewsAnalysis(BaseModel):
    category: str
    analyst_name: str


@flock_type
class NewsDigest(BaseModel):
    headline: str
    total_analysts: int


class Emit(EngineComponent):  # type: ignore[misc]
    """Returns one output of ``out`` per input, after ``delay`` seconds."""

    out: Any = None
    delay: float = 0.0

    async def evaluate(self, agent: Any, ctx: Any, inputs: EvalInputs) -> EvalResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.out is None:
            return EvalResult.empty()
        return EvalResult.from_object(self.out, agent=agent)

    async def evaluate_batch(self, agent: Any, ctx: Any, inputs: EvalInputs) -> EvalResult:
        return await self.evaluate(agent, ctx, inputs)


async def news_overhead(latency: float = 0.05) -> float:
    flock = Flock(max_agent_iterations=NO_BREAKER)
    for i in range(8):
        out = NewsAnalysis(category=f"c{i}", analyst_name=f"a{i}")
        flock.agent(f"analyst{i}").consumes(BreakingNews).publishes(NewsAnalysis).with_engines(
            Emit(out=out, delay=latency)
        ).with_utilities(quiet())
    flock.agent("editor").consumes(NewsAnalysis, batch=BatchSpec(size=8)).publishes(
        NewsDigest
    ).with_engines(
        Emit(out=NewsDigest(headline="h", total_analysts=8), delay=latency)
    ).with_utilities(quiet())
    t0 = time.perf_counter()
    await flock.publish(BreakingNews(headline="h", raw_story="x " * 60))
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    digests = await flock.store.get_by_type(NewsDigest)
    assert len(digests) == 1, digests
    return wall - 2 * latency


async def throughput(agents: int, items: int, *, output: bool, delay: float = 0.0) -> float:
    """Seconds per agent run."""
    flock = Flock(max_agent_iterations=NO_BREAKER)
    for i in range(agents):
        b = flock.agent(f"f{i}").consumes(Item)
        if output:
            b = b.publishes(Out)
        b.with_engines(Emit(out=Out(n=i) if output else None, delay=delay)).with_utilities(quiet())
    t0 = time.perf_counter()
    await flock.publish_many([Item(n=i) for i in range(items)])
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    return wall / (agents * items)


def measure(workload: str) -> tuple[float, str]:
    if workload == "a":
        asyncio.run(news_overhead())  # warm-up: first-call imports and caches
        samples = [asyncio.run(news_overhead()) for _ in range(5)]
        return statistics.median(samples) * 1000, "ms over ideal"
    if workload == "b":
        asyncio.run(throughput(8, 100, output=True))
        return 1 / asyncio.run(throughput(8, 2000, output=True)), "runs/s"
    if workload.startswith("c"):
        n = int(workload[1:])
        asyncio.run(throughput(n, 4, output=False))
        return asyncio.run(throughput(n, max(4, 4096 // n), output=False)) * 1e6, "µs/run"
    if workload == "e":
        return asyncio.run(throughput(200, 1, output=False, delay=1.0)) * 200, "s wall"
    raise SystemExit(f"unknown workload {workload!r}")


if __name__ == "__main__":
    value, unit = measure(sys.argv[1])
    print(json.dumps({"workload": sys.argv[1], "value": value, "unit": unit}))
