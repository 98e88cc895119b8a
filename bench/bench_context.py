"""Agents with context at growing sizes: does a task's start stay flat as the run grows?

    python bench/bench_context.py                 # 1,000 and 4,000 items
    python bench/bench_context.py 1000 16000      # other sizes

Each item is published on its own (its own correlation id) and goes through two
function agents ``.with_context()``: each task's start reads the earlier
artifacts of its correlation (``RunArtifacts.of_correlation``), from the log once
the run's compact state has let go of them. Prints agent runs per second at each
size and the ratio of the largest size's rate to the smallest's (1.0 is flat).

Until the lookups up to a seq probed their key (issue 14: ``query_models.by_key``),
each start walked the run's artifacts: 1,198 runs/s at 1,000 items, 459 at 4,000.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine
from flock_es import Flock


class Item(BaseModel):
    n: int


class Mid(BaseModel):
    n: int


class Out(BaseModel):
    n: int


def _mid(x: Item) -> Mid:
    return Mid(n=x.n)


def _out(x: Mid) -> Out:
    return Out(n=x.n)


async def _rate(n: int, db: Path) -> float:
    """Agent runs per second of ``n`` items, each published alone."""
    flock = Flock(db=db)
    flock.agent("a").consumes(Item).publishes(Mid).with_context().with_function(_mid)
    flock.agent("b").consumes(Mid).publishes(Out).with_context().with_function(_out)
    await flock.start()
    t0 = time.perf_counter()
    for i in range(n):
        await flock.publish(Item(n=i), correlation_id=f"c{i}")
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    done = len(flock.artifacts().of_type("Out"))
    await flock.close()
    if done != n:
        raise SystemExit(f"bench_context: {done} outputs of {n} items")
    return 2 * n / wall


def main() -> None:
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print((__doc__ or "").strip())
        return
    if not all(a.isdigit() and int(a) > 0 for a in sys.argv[1:]):
        print(
            "bench_context.py: error: sizes are whole numbers of items, e.g. 1000 4000",
            file=sys.stderr,
        )
        raise SystemExit(2)
    sizes = [int(a) for a in sys.argv[1:]] or [1_000, 4_000]
    print(machine())
    rates = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            rate = asyncio.run(_rate(n, Path(d) / "context.db"))
        rates.append(rate)
        print(f"{n:>7,} items ({2 * n:,} runs with context): {rate:,.0f} runs/s", flush=True)
    if len(rates) > 1:
        print(f"largest / smallest: {rates[-1] / rates[0]:.2f} (1.0 is flat)")


if __name__ == "__main__":
    main()
