"""Core benchmarks of issue 2 (a), (b), (c). Prints numbers and the machine.

    python bench/bench_core.py            # all three
    python bench/bench_core.py b          # one of them
    python bench/bench_core.py --compare --flock-core-python /path/to/flockcore/bin/python
                                          # side by side with flock-core 0.5.7 (bench/_compare.py)

(a) the news scenario with 0.05 s offline latency per call: wall time minus the
    ideal 0.10 s (analysts in parallel, then the editor).
(b) 8 Python-function agents consume 2,000 artifacts, one output each, durable
    on SQLite: agent runs per second, and peak RSS.
(c) 1, 8, 64, 256 agents subscribed to one type: cost per agent run; and 1
    matching agent among 256 subscribed to other types: cost per publish.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, median, peak_rss_mb
from flock_es import Flock
from flock_es.runtime.program import load_program

ROOT = Path(__file__).resolve().parent.parent


class Item(BaseModel):
    n: int


class Out(BaseModel):
    n: int


async def _news_once(db: Path) -> float:
    import contextlib
    import io

    prog = load_program(ROOT / "examples" / "news.py")
    flock = prog.flock
    flock.db_path = db
    flock.model = "offline?latency=0.05"
    news = prog.module.BreakingNews(headline="h", raw_story="x " * 60, source="s", timestamp="t")
    await flock.start()  # opening the database is setup, not orchestration
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        await flock.publish(news)
        await flock.run_until_idle()
    wall = time.perf_counter() - t0
    await flock.close()
    return wall


def bench_a(repeats: int = 7) -> None:
    overs = []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            overs.append(asyncio.run(_news_once(Path(d) / f"a{r}.db")) - 0.10)
    print(
        f"(a) news, 0.05 s/call: wall - ideal 0.10 s = median {median(overs) * 1000:.1f} ms "
        f"(min {min(overs) * 1000:.1f}, max {max(overs) * 1000:.1f}, n={repeats})"
    )


async def _throughput(n_agents: int, n_items: int, db: Path) -> tuple[int, float]:
    flock = Flock(db=db)
    for i in range(n_agents):
        flock.agent(f"f{i}").consumes(Item).publishes(Out).with_function(lambda x: Out(n=x.n))
    await flock.start()
    t0 = time.perf_counter()
    await flock.publish_many([Item(n=i) for i in range(n_items)])
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    await flock.close()
    runs = n_agents * n_items
    return runs, wall


def _rates(repeats: int) -> list[float]:
    rates = []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            runs, wall = asyncio.run(_throughput(8, 2000, Path(d) / f"b{r}.db"))
            rates.append(runs / wall)
    return rates


def bench_b(repeats: int = 5) -> None:
    from flock_es.cli.run_driver import tune_gc

    plain = _rates(repeats)
    tune_gc()  # what `flock-es run` does to its own process
    tuned = _rates(repeats)
    print(
        "(b) 8 function agents x 2,000 artifacts, durable on SQLite:\n"
        f"    library defaults (Python's GC thresholds): median {median(plain):,.0f} runs/s "
        f"(min {min(plain):,.0f}, max {max(plain):,.0f}, n={repeats})\n"
        f"    as `flock-es run` runs it (GC tuned):       median {median(tuned):,.0f} runs/s "
        f"(min {min(tuned):,.0f}, max {max(tuned):,.0f}, n={repeats})\n"
        f"    peak RSS {peak_rss_mb():.0f} MB"
    )


async def _per_run(n_agents: int, n_items: int, db: Path, distractors: int = 0) -> float:
    flock = Flock(db=db)

    class Other(BaseModel):
        x: int

    for i in range(n_agents):
        flock.agent(f"f{i}").consumes(Item).with_function(lambda x: None)
    for i in range(distractors):
        flock.agent(f"d{i}").consumes(Other).with_function(lambda x: None)
    await flock.start()
    t0 = time.perf_counter()
    await flock.publish_many([Item(n=i) for i in range(n_items)])
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    await flock.close()
    return wall / (n_agents * n_items)


def bench_c() -> None:
    print("(c) cost per agent run, agents subscribed to one type (durable, function agents):")
    for n in (1, 8, 64, 256):
        items = max(4, 4096 // n)
        samples = []
        for r in range(3):
            with tempfile.TemporaryDirectory() as d:
                samples.append(asyncio.run(_per_run(n, items, Path(d) / f"c{n}-{r}.db")))
        print(f"    {n:>4} matching agents: median {median(samples) * 1e6:6.1f} µs per run")
    samples = []
    for r in range(3):
        with tempfile.TemporaryDirectory() as d:
            samples.append(asyncio.run(_per_run(1, 2048, Path(d) / f"cd-{r}.db", distractors=255)))
    print(f"    1 matching + 255 on other types: median {median(samples) * 1e6:6.1f} µs per run")


if __name__ == "__main__":
    if "--compare" in sys.argv or "--one" in sys.argv:
        from bench._compare import main

        raise SystemExit(main(sys.argv[1:]))
    import argparse

    parser = argparse.ArgumentParser(
        description="flock-es core benchmarks (a), (b), (c); with --compare, flock-es beside "
        "flock-core 0.5.7 on (a), (b), (c) and (e) (bench_core.py --compare --help).",
        epilog="bench_core.py --compare --flock-core-python PATH [--pairs N] [--only a,b,c,e]",
    )
    parser.add_argument("which", nargs="*", help="a, b or c (default: all three)")
    which = parser.parse_args().which or ["a", "b", "c"]
    if unknown := sorted(set(which) - {"a", "b", "c"}):
        parser.error(f"unknown workload {', '.join(unknown)}: choose from a, b, c")
    print(machine())
    for w in which:
        {"a": bench_a, "b": bench_b, "c": bench_c}[w]()
