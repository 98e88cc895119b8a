"""Seven analyses for an editor that wants eight or its timeout: the program stops
waiting after STOP_AFTER seconds (``run_until_idle(timeout=)``) unless it is 0."""

import os

from pydantic import BaseModel

from flock_es import BatchSpec, Flock, flock_type

BATCH_TIMEOUT = float(os.environ.get("BATCH_TIMEOUT", "3"))
STOP_AFTER = float(os.environ.get("STOP_AFTER", "0.5"))


@flock_type
class Analysis(BaseModel):
    n: int


@flock_type
class Digest(BaseModel):
    count: int


flock = Flock()
flock.agent("editor").consumes(Analysis, batch=BatchSpec(size=8, timeout=BATCH_TIMEOUT)).publishes(
    Digest
).with_function(lambda items: Digest(count=len(items)))


async def main() -> None:
    await flock.publish_many(Analysis(n=i) for i in range(7))
    if STOP_AFTER:
        idle = await flock.run_until_idle(timeout=STOP_AFTER)
        print(f"idle={idle}")
