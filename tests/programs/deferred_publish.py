"""One large publish_many, for the crash test of deferred decisions
(tests/test_deferred_publish.py): DEFERRED_N items, two function agents each."""

import os
import time
from collections.abc import Callable

from pydantic import BaseModel

from flock_es import Flock, flock_type

N = int(os.environ.get("DEFERRED_N", "1200"))


@flock_type
class Item(BaseModel):
    n: int


@flock_type
class Done(BaseModel):
    n: int
    by: str


flock = Flock()


def worker(name: str) -> Callable[[Item], Done]:
    def run(x: Item) -> Done:
        time.sleep(0.001)  # slow enough for a kill to land between the decided units
        return Done(n=x.n, by=name)

    return run


for name in ("a", "b"):
    flock.agent(name).consumes(Item).publishes(Done).with_function(worker(name))


async def main() -> None:
    await flock.publish_many(Item(n=i) for i in range(N))
