"""A run that is killed with a join group, a count gate and a batch half full.

``GATES_TEST_BLOCK=1``: the ``slow`` agent never finishes, so the run is still
busy when the test SIGKILLs it. ``GATES_TEST_TIMERS=1``: the batch has a
timeout and the join a time window, so a resume must re-arm both timers.
"""

import asyncio
import os
from datetime import timedelta

from pydantic import BaseModel

from flock_es import AfterVisibility, BatchSpec, Flock, JoinSpec, flock_type


@flock_type
class Left(BaseModel):
    key: str
    n: int


@flock_type
class Right(BaseModel):
    key: str
    n: int


@flock_type
class Item(BaseModel):
    n: int


@flock_type
class Memo(BaseModel):
    n: int


@flock_type
class Joined(BaseModel):
    agent: str
    members: list[str]


def names(items: list[BaseModel] | BaseModel) -> list[str]:
    items = items if isinstance(items, list) else [items]
    return [f"{type(i).__name__[0]}{i.n}" for i in items]  # type: ignore[attr-defined]


def fire(agent: str):  # type: ignore[no-untyped-def]
    def fn(items: list[BaseModel]) -> Joined:
        return Joined(agent=agent, members=names(items))

    return fn


async def slow(item: Item) -> None:
    if os.environ.get("GATES_TEST_BLOCK"):
        await asyncio.Event().wait()


TIMERS = bool(os.environ.get("GATES_TEST_TIMERS"))
WINDOW = timedelta(seconds=2) if TIMERS else 100

flock = Flock()
flock.agent("joiner").consumes(
    Left, Right, join=JoinSpec(by=lambda x: x.key, within=WINDOW)
).with_function(fire("joiner")).publishes(Joined)
flock.agent("counter").consumes(Left, Left, Right).with_function(fire("counter")).publishes(Joined)
flock.agent("batcher").consumes(
    Item, batch=BatchSpec(size=10, timeout=2) if TIMERS else BatchSpec(size=3)
).with_function(fire("batcher")).publishes(Joined)
flock.agent("slow").consumes(Item, where=lambda i: i.n == 4).with_function(slow)
flock.agent("embargo").consumes(Memo).with_function(fire("embargo")).publishes(Joined)


async def main() -> None:
    await flock.publish(Left(key="k1", n=1))
    await flock.publish(Left(key="k2", n=2))
    await flock.publish(Right(key="k1", n=1))
    await flock.publish(Left(key="k3", n=3))
    for n in range(1, 5):
        await flock.publish(Item(n=n))
    if TIMERS:  # released by a timer that the crash interrupts
        await flock.publish(Memo(n=1), visibility=AfterVisibility(ttl=2))
    await flock.run_until_idle()
