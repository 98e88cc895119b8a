"""A small program for the replay tests: a `where` filter, a function agent, a model agent.

The tests copy this file, run it, then edit the copy (the predicate or the
function's return) and replay the recorded run against the edited code.
"""

from pydantic import BaseModel

from flock_es import Flock, flock_type


@flock_type
class Item(BaseModel):
    n: int


@flock_type
class Big(BaseModel):
    n: int


@flock_type
class Doubled(BaseModel):
    n: int


@flock_type
class Note(BaseModel):
    text: str


flock = Flock()

flock.agent("big").consumes(Item, where=lambda i: i.n >= 3).publishes(Big).with_function(
    lambda i: Big(n=i.n)
)
flock.agent("doubler").consumes(Item).publishes(Doubled).with_function(lambda i: Doubled(n=i.n * 2))
flock.agent("describer").description("Describe a big item").consumes(Big).publishes(Note)


async def main() -> None:
    await flock.publish_many(Item(n=i) for i in range(5))
    await flock.run_until_idle()
