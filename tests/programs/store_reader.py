"""A function agent that reads the blackboard through ``ctx.store`` (replay must give it one).

One note is private to another agent, so the store must also filter it out,
live and under replay alike.
"""

from pydantic import BaseModel

from flock_es import AgentContext, Flock, PrivateVisibility, flock_type


@flock_type
class Note(BaseModel):
    text: str


@flock_type
class Seed(BaseModel):
    n: int


@flock_type
class Summary(BaseModel):
    texts: list[str]


async def summarize(seed: Seed, ctx: AgentContext) -> Summary:
    assert ctx.store is not None
    notes = await ctx.store.get_by_type(Note)
    return Summary(texts=[f"{seed.n}:{n.text}" for n in notes])


flock = Flock()
flock.agent("summarizer").consumes(Seed).with_function(summarize).publishes(Summary)


async def main() -> None:
    await flock.publish_many([Note(text="alpha"), Note(text="beta")])
    await flock.publish(Note(text="secret"), visibility=PrivateVisibility(agents={"someone"}))
    await flock.run_until_idle()
    await flock.publish(Seed(n=1))
    await flock.run_until_idle()
