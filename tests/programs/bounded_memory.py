"""More artifacts than a compact state holds (PRUNE_AT), for tests/test_memory_bounded.py:
what the run lets go of is read back from the log by ``ctx.context``, ``ctx.store`` and
``flock.store``. BOUNDED_N notes in one correlation; "count" answers each one, "look"
(the last note only) sees the earlier artifacts of the correlation and the store."""

import os
import time

from pydantic import BaseModel

from flock_es import AgentContext, Flock, flock_type

N = int(os.environ.get("BOUNDED_N", "5000"))
SLOW = float(os.environ.get("BOUNDED_SLOW", "0"))


@flock_type
class BNote(BaseModel):
    n: int


@flock_type
class BDone(BaseModel):
    n: int


@flock_type
class BSeen(BaseModel):
    context: list[str]
    notes: int
    first: list[int]


flock = Flock()


def count(x: BNote) -> BDone:
    if SLOW:
        time.sleep(SLOW)  # a window for a kill to land in (the resume test)
    return BDone(n=x.n)


async def look(x: BNote, ctx: AgentContext) -> BSeen:
    assert ctx.store is not None
    notes = await ctx.store.get_by_type(BNote)
    return BSeen(
        context=[a.id for a in ctx.context], notes=len(notes), first=[n.n for n in notes[:3]]
    )


flock.agent("count").consumes(BNote).publishes(BDone).with_function(count)
flock.agent("look").consumes(BNote, where=lambda x: x.n == N - 1).publishes(BSeen).with_function(
    look
).with_context()


async def main() -> None:
    await flock.publish_many((BNote(n=i) for i in range(N)), correlation_id="c")
