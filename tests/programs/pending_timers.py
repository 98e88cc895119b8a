"""A run that closes with a join window and an AfterVisibility release still armed.

``main`` is for ``flock-es run`` (it waits for both timers). The test instead
publishes in-process and closes at once, so the run is recorded "completed"
while its only pending work is two timers; ``flock-es resume`` must finish it.
"""

from datetime import timedelta

from pydantic import BaseModel

from flock_es import AfterVisibility, Flock, JoinSpec, flock_type


@flock_type
class Order(BaseModel):
    key: str


@flock_type
class Payment(BaseModel):
    key: str


@flock_type
class Memo(BaseModel):
    text: str


@flock_type
class Seen(BaseModel):
    what: str


flock = Flock()
flock.agent("matcher").consumes(
    Order, Payment, join=JoinSpec(by=lambda x: x.key, within=timedelta(seconds=1))
).with_function(lambda items: Seen(what="pair")).publishes(Seen)
flock.agent("reader").consumes(Memo).with_function(lambda m: Seen(what=m.text)).publishes(Seen)


async def seed() -> None:
    await flock.publish(Order(key="o1"))
    await flock.publish(Memo(text="embargoed"), visibility=AfterVisibility(ttl=1))


async def main() -> None:
    await seed()
    await flock.run_until_idle()
