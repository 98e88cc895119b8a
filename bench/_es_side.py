"""flock-es's side of ``bench_core.py --compare``: one workload, measured in this process.

Each function returns one number (see bench/_compare.py for the workloads).
Databases go to a fresh temporary directory on the default temp disk; the
durability mode is the library's default.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench._news_seed import Analysis, Digest, News, wire_news
from bench.bench_core import _news_once
from flock_es import Flock

LATENCY = 0.05


class Item(BaseModel):
    n: int


class Out(BaseModel):
    n: int


async def news_fn(db: Path, latency: float = LATENCY) -> float:
    """Seconds over the ideal of the news seed with ``async def`` agents waiting ``latency``."""
    flock = Flock(db=db)

    async def analyse(news: News) -> Analysis:
        await asyncio.sleep(latency)
        return Analysis(category="c")

    async def edit(batch: list[Analysis]) -> Digest:
        await asyncio.sleep(latency)
        return Digest(headline="h", total=len(batch))

    wire_news(flock, analyse, edit)
    await flock.start()
    t0 = time.perf_counter()
    await flock.publish(News(headline="h"))
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    await flock.close()
    return wall - 2 * latency


async def _per_run(agents: int, items: int, db: Path, *, kind: str, output: bool) -> float:
    """Seconds per agent run."""
    flock = Flock(db=db)

    def fn(x: Item) -> Out | None:
        return Out(n=x.n) if output else None

    async def afn(x: Item) -> Out | None:
        return Out(n=x.n) if output else None

    for i in range(agents):
        b = flock.agent(f"f{i}").consumes(Item)
        if output:
            b = b.publishes(Out)
        b.with_function(fn if kind == "def" else afn)
    await flock.start()
    t0 = time.perf_counter()
    await flock.publish_many([Item(n=i) for i in range(items)])
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    await flock.close()
    return wall / (agents * items)


async def _wide_fn(db: Path, agents: int = 200, latency: float = 1.0) -> float:
    """(e) with ``async def`` agents that sleep ``latency`` and publish nothing, as
    flock-core's engines in this workload do."""
    flock = Flock(db=db)

    async def slow(x: Item) -> None:
        await asyncio.sleep(latency)

    for i in range(agents):
        flock.agent(f"s{i}").consumes(Item).with_function(slow)
    return await _one_publish_wall(flock)


async def _wide(db: Path, agents: int = 200, latency: float = 1.0) -> float:
    flock = Flock(db=db, model=f"offline?latency={latency}")
    for i in range(agents):
        flock.agent(f"m{i}").description("answers").consumes(Item).publishes(Out)
    return await _one_publish_wall(flock)


async def _one_publish_wall(flock: Flock) -> float:
    """Seconds from one published Item to idle: workload (e)'s measure, either agent kind."""
    await flock.start()
    t0 = time.perf_counter()
    await flock.publish(Item(n=1))
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    await flock.close()
    return wall


def _fresh(run: Callable[[Path], Coroutine[Any, Any, float]]) -> float:
    """``run(db)`` on a database in a fresh temporary directory: its one number."""
    with tempfile.TemporaryDirectory() as d:
        return asyncio.run(run(Path(d) / "bench.db"))


def measure(name: str) -> float:
    if name == "a_fn":
        _fresh(news_fn)  # warm-up: imports and first-call caches
        return statistics.median(_fresh(news_fn) for _ in range(5)) * 1000
    if name == "a_model":
        with tempfile.TemporaryDirectory() as d:
            asyncio.run(_news_once(Path(d) / "warm.db"))
            overs = [asyncio.run(_news_once(Path(d) / f"a{r}.db")) - 2 * LATENCY for r in range(5)]
        return statistics.median(overs) * 1000
    if name.startswith("b_"):
        kind = name[2:]
        _fresh(lambda db: _per_run(8, 100, db, kind=kind, output=True))
        return 1 / _fresh(lambda db: _per_run(8, 2000, db, kind=kind, output=True))
    if name.startswith("c"):
        n, kind = name[1:].split("_")
        agents = int(n)
        _fresh(lambda db: _per_run(agents, 4, db, kind=kind, output=False))
        items = max(4, 4096 // agents)
        return _fresh(lambda db: _per_run(agents, items, db, kind=kind, output=False)) * 1e6
    if name == "e_fn":
        return _fresh(_wide_fn)
    if name == "e_model":
        return _fresh(_wide)
    raise SystemExit(f"unknown workload {name!r}")
