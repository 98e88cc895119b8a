"""64 agents with ``where`` predicates on one type: the cost of one published artifact.

    python bench/bench_where.py

Each of 64 agents subscribes to ``Ticket`` with a predicate that accepts one
ticket in 64, so every ticket runs exactly one agent. Compared with the same
tickets and one agent without a predicate, the difference is what 64 predicate
checks (and 63 non-matches) cost per publish. Also the pure decide cost. Median
of 3 runs, durable on SQLite, function agents.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import help_or_bad_args, machine, median
from flock_es import Flock
from flock_es.domain.event_bodies import ArtifactPublished
from flock_es.domain.events import EventKind, trusted_event
from flock_es.domain.subscriptions import Subscription
from flock_es.projection.decide import SubscriptionIndex, decide_artifact
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState

AGENTS = 64
TICKETS = 4_096


class Ticket(BaseModel):
    n: int
    queue: int


def accept(i: int):  # type: ignore[no-untyped-def]
    return lambda t: t.queue == i


async def _durable(n_agents: int, with_where: bool, db: Path) -> float:
    flock = Flock(db=db)
    for i in range(n_agents):
        flock.agent(f"q{i}").consumes(
            Ticket, where=accept(i) if with_where else None
        ).with_function(lambda t: None)
    tickets = [Ticket(n=n, queue=n % AGENTS) for n in range(TICKETS)]
    await flock.start()
    t0 = time.perf_counter()
    for i in range(0, TICKETS, 512):
        await flock.publish_many(tickets[i : i + 512])
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    runs = sum(a.done for a in flock.state.agents.values())
    await flock.close()
    assert runs == TICKETS, runs
    return wall / TICKETS


def _pure(n_agents: int) -> float:
    subs = [
        Subscription.build(f"q{i}", 0, (Ticket,), accept(i), None, None, None)
        for i in range(n_agents)
    ]
    index = SubscriptionIndex.build(subs)
    state = RunState(run_id="r-bench")
    tickets = [Ticket(n=n, queue=n % AGENTS) for n in range(TICKETS)]
    t0 = time.perf_counter()
    for t in tickets:
        aid = f"a{t.n}"
        body: ArtifactPublished = {
            "id": aid,
            "type": "Ticket",
            "payload": {"n": t.n, "queue": t.queue},
        }
        apply(state, trusted_event("r-bench", EventKind.ARTIFACT_PUBLISHED, body, 0.0))
        for e in decide_artifact(state, index, state.artifacts[aid], t, 0.0):
            apply(state, e)
    return (time.perf_counter() - t0) / TICKETS


def main() -> None:
    help_or_bad_args(__doc__)
    print(machine())
    print(f"{TICKETS:,} tickets, each accepted by exactly one agent (durable, function agents):")
    results = {}
    for label, n, where in (
        ("64 agents with where (1 in 64 matches)", AGENTS, True),
        ("1 agent, no where (baseline)", 1, False),
    ):
        samples = []
        for r in range(3):
            with tempfile.TemporaryDirectory() as d:
                samples.append(asyncio.run(_durable(n, where, Path(d) / f"w{r}.db")))
        results[label] = median(samples)
        print(f"    {label:<40} median {median(samples) * 1e6:6.1f} µs per published artifact")
    a, b = results.values()
    print(
        f"    ratio 64-with-where / baseline: {a / b:.2f}x ({(a - b) * 1e6:.1f} µs for 64 checks)"
    )
    for n in (1, 64):
        print(
            f"    decide only, {n:>2} predicates: median {median([_pure(n) for _ in range(3)]) * 1e6:5.1f} µs per artifact"
        )


if __name__ == "__main__":
    main()
