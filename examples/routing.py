"""Conditional routing with ``where``: only some agents fire, based on the payload.

flock-es run examples/routing.py
"""

import asyncio
from typing import Literal

from pydantic import BaseModel

from flock_es import Flock, flock_type


@flock_type
class News(BaseModel):
    headline: str
    priority: Literal["breaking", "investigative", "routine"]


@flock_type
class QuickTake(BaseModel):
    headline: str
    take: str


@flock_type
class DeepDive(BaseModel):
    headline: str
    questions: list[str]


flock = Flock()

flock.agent("quick").description("Writes a two-line take on breaking news").consumes(
    News, where=lambda n: n.priority == "breaking"
).publishes(QuickTake)

flock.agent("deep").description("Lists questions for an investigation").consumes(
    News, where=lambda n: n.priority == "investigative"
).publishes(DeepDive)


async def main():
    await flock.publish_many(
        [
            News(headline="Bridge closed after crack found", priority="breaking"),
            News(headline="Where did the stadium money go?", priority="investigative"),
            News(headline="Library hours change in May", priority="routine"),
        ]
    )
    await flock.run_until_idle()
    print("quick takes:", [q.headline for q in await flock.store.get_by_type(QuickTake)])
    print("deep dives: ", [d.headline for d in await flock.store.get_by_type(DeepDive)])


if __name__ == "__main__":
    asyncio.run(main())
