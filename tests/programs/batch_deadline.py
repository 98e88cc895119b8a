"""A batch with a short timeout that normally fills by size (the fork-parity test).

Four seeds, four workers of staggered duration, and an editor that batches
their parts: size 4, timeout 2 s. Run as is, the batch fills by size and the
editor runs once.
"""

import asyncio

from pydantic import BaseModel

from flock_es import BatchSpec, Flock, flock_type


@flock_type
class Seed(BaseModel):
    n: int


@flock_type
class Part(BaseModel):
    n: int


@flock_type
class Digest(BaseModel):
    parts: list[int]


async def work(seed: Seed) -> Part:
    await asyncio.sleep(0.1 * seed.n)
    return Part(n=seed.n)


def edit(parts: list[Part]) -> Digest:
    return Digest(parts=sorted(p.n for p in parts))


flock = Flock()
flock.agent("worker").consumes(Seed).with_function(work).publishes(Part)
flock.agent("editor").consumes(Part, batch=BatchSpec(size=4, timeout=2)).with_function(
    edit
).publishes(Digest)


async def main() -> None:
    await flock.publish_many([Seed(n=n) for n in range(4)])
