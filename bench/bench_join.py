"""Joins: 10,000 artifacts (5,000 of each of two types) through one JoinSpec.

    python bench/bench_join.py

Prints firings per second, durable on SQLite with a function agent, for three
arrival patterns, and the cost of the pure decision alone (decide + fold,
no I/O) per arrival. Median of 3 runs each.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import help_or_bad_args, machine, median, peak_rss_mb
from flock_es import Flock, JoinSpec
from flock_es.domain.event_bodies import ArtifactPublished
from flock_es.domain.events import EventKind, trusted_event
from flock_es.domain.subscriptions import Subscription
from flock_es.projection.decide import SubscriptionIndex, decide_artifact
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState

N = 5_000


class Order(BaseModel):
    key: int


class Payment(BaseModel):
    key: int


class Matched(BaseModel):
    key: int


def arrivals(pattern: str) -> list[BaseModel]:
    if pattern == "interleaved":  # each pair completes at once: few open groups
        return [x for k in range(N) for x in (Order(key=k), Payment(key=k))]
    if pattern == "all-then-all":  # 5,000 groups open before the first completes
        return [*(Order(key=k) for k in range(N)), *(Payment(key=k) for k in range(N))]
    raise ValueError(pattern)


async def _durable(pattern: str, within: timedelta | int | None, db: Path) -> float:
    flock = Flock(db=db)
    flock.agent("matcher").consumes(
        Order, Payment, join=JoinSpec(by=lambda x: x.key, within=within)
    ).with_function(lambda xs: Matched(key=xs[0].key)).publishes(Matched)
    items = arrivals(pattern)
    await flock.start()
    t0 = time.perf_counter()
    for i in range(0, len(items), 500):
        await flock.publish_many(items[i : i + 500])
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    fired = len(await flock.store.get_by_type(Matched))
    await flock.close()
    assert fired == N, fired
    return N / wall


def _pure(pattern: str) -> float:
    sub = Subscription.build(
        "matcher",
        0,
        (Order, Payment),
        None,
        None,
        None,
        None,
        join=JoinSpec(by=lambda x: x.key),
    )
    index = SubscriptionIndex.build([sub])
    state = RunState(run_id="r-bench")
    items = arrivals(pattern)
    t0 = time.perf_counter()
    for i, obj in enumerate(items):
        body: ArtifactPublished = {
            "id": f"a{i}",
            "type": type(obj).__name__,
            "payload": obj.model_dump(),
        }
        apply(state, trusted_event("r-bench", EventKind.ARTIFACT_PUBLISHED, body, 0.0))
        for e in decide_artifact(state, index, state.artifacts[f"a{i}"], obj, 0.0):
            apply(state, e)
    return (time.perf_counter() - t0) / len(items)


def main() -> None:
    help_or_bad_args(__doc__)
    print(machine())
    print(f"join of two types, {2 * N:,} artifacts -> {N:,} firings (durable, function agent):")
    for pattern, within, label in (
        ("interleaved", None, "interleaved, no window"),
        ("all-then-all", None, "all orders then all payments, no window"),
        ("all-then-all", 20_000, "all orders then all payments, count window"),
        ("interleaved", timedelta(minutes=5), "interleaved, 5 min time window"),
    ):
        rates = []
        for r in range(3):
            with tempfile.TemporaryDirectory() as d:
                rates.append(asyncio.run(_durable(pattern, within, Path(d) / f"j{r}.db")))
        print(
            f"    {label:<44} median {median(rates):8,.0f} firings/s "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f})"
        )
    for pattern in ("interleaved", "all-then-all"):
        cost = median([_pure(pattern) for _ in range(3)])
        print(f"    decide + fold only, {pattern:<14}: median {cost * 1e6:5.1f} µs per arrival")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
