"""Types with registered names (@flock_type(name=...)): what the log records."""

import asyncio

from pydantic import BaseModel

from flock_es import Flock, flock_type


@flock_type(name="news.Story")
class Story(BaseModel):
    text: str


@flock_type(name="news.Summary")
class Summary(BaseModel):
    line: str


@flock_type
class Verdict(BaseModel):
    ok: bool


flock = Flock()
flock.agent("summariser").consumes(Story).publishes(Summary)
flock.agent("checker").consumes(Summary).publishes(Verdict).with_function(
    lambda s: Verdict(ok=bool(s.line))
)


async def main() -> None:
    await flock.publish(Story(text="Rain is expected in Lisbon on Sunday."))
    await flock.publish({"type": "news.Story", "text": "A new bridge opens in Porto."})
    await flock.run_until_idle()
    print(len(await flock.store.get_by_type(Verdict)), "verdicts")


if __name__ == "__main__":
    asyncio.run(main())
