"""The circuit breaker counts per run; ``reset_circuit_at_idle=True`` is flock-core's
rule (counts start again at idle), recorded as ``circuit.reset`` so replay follows it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.log import LogReader
from flock_es.runtime.replay import Replayer
from tests.conftest import event_kinds


@flock_type
class Ping(BaseModel):
    n: int


@flock_type
class Pong(BaseModel):
    n: int


def build(reset: bool, db: Path | None = None) -> Flock:
    flock = Flock(db=db, max_agent_iterations=2, reset_circuit_at_idle=reset)
    flock.agent("ponger").consumes(Ping).publishes(Pong).with_function(lambda p: Pong(n=p.n))
    return flock


@pytest.mark.parametrize(("reset", "pongs"), [(False, [1, 2]), (True, [1, 2, 3, 4])])
async def test_two_requests_of_two_pings_under_a_limit_of_two(
    db_path: Path, reset: bool, pongs: list[int]
) -> None:
    flock = build(reset, db_path)
    for first in (1, 3):  # two requests, each waited for until idle
        await flock.publish_many([Ping(n=first), Ping(n=first + 1)])
        await flock.run_until_idle()
    await flock.close()
    assert sorted(p.n for p in await flock.store.get_by_type(Pong)) == pongs
    kinds = event_kinds(db_path)
    assert kinds.count("circuit.tripped") == (0 if reset else 2)
    assert kinds.count("circuit.reset") == (2 if reset else 0)

    with LogReader(db_path) as reader:
        recorded = list(reader.events(flock.run_id))
    report = await Replayer(recorded, build(not reset).agents).run()
    assert report.identical, report.divergence


async def test_a_runaway_loop_between_two_idles_still_trips(db_path: Path) -> None:
    flock = build(True, db_path)
    await flock.publish_many([Ping(n=i) for i in range(5)])
    await flock.run_until_idle()
    await flock.close()
    assert len(await flock.store.get_by_type(Pong)) == 2
    assert event_kinds(db_path).count("circuit.tripped") == 3
