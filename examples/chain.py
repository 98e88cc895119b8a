"""A sequential chain formed by types: Idea -> Outline -> Draft -> Review.

flock-es run examples/chain.py
"""

import asyncio

from pydantic import BaseModel, Field

from flock_es import Flock, flock_type


@flock_type
class Idea(BaseModel):
    topic: str
    audience: str


@flock_type
class Outline(BaseModel):
    title: str
    sections: list[str] = Field(min_length=3, max_length=5)


@flock_type
class Draft(BaseModel):
    title: str
    body: str = Field(min_length=200)


@flock_type
class Review(BaseModel):
    verdict: str
    score: int = Field(ge=1, le=10)


flock = Flock()

flock.agent("outliner").description("Turns an idea into an outline").consumes(Idea).publishes(
    Outline
)
flock.agent("writer").description("Writes a draft from an outline").consumes(Outline).publishes(
    Draft
)
flock.agent("reviewer").description("Reviews a draft").consumes(Draft).publishes(Review)


async def main():
    await flock.publish(Idea(topic="Event sourcing for LLM agents", audience="Python engineers"))
    await flock.run_until_idle()
    for review in await flock.store.get_by_type(Review):
        print(f"review: {review.score}/10 - {review.verdict}")


if __name__ == "__main__":
    asyncio.run(main())
