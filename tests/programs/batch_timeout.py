"""A program whose batch is flushed by its timeout: three items, a batch of size 100."""

import os

from pydantic import BaseModel

from flock_es import BatchSpec, Flock, flock_type

TIMEOUT = float(os.environ.get("BATCH_TIMEOUT", "1.5"))


@flock_type
class Item(BaseModel):
    n: int


@flock_type
class Tally(BaseModel):
    count: int
    total: int


flock = Flock()
flock.agent("collector").consumes(Item, batch=BatchSpec(size=100, timeout=TIMEOUT)).publishes(
    Tally
).with_function(lambda items: Tally(count=len(items), total=sum(i.n for i in items)))


async def main() -> None:
    await flock.publish_many(Item(n=i) for i in range(3))
    await flock.run_until_idle()
