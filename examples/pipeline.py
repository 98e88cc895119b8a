"""The tutorial's multi-stage pipeline: 8 analysts, then 3 fact-checkers, then an editor.

    flock-es run examples/pipeline.py

Stage 1 runs 8 analysts in parallel on one News; each of the 3 fact-checkers
checks every analysis (24 checks, in parallel); the editor batches the 24
verified analyses into one Digest.
"""

import asyncio
from datetime import timedelta

from pydantic import BaseModel, Field

from flock_es import BatchSpec, Flock, flock_type


@flock_type
class News(BaseModel):
    headline: str
    story: str = Field(min_length=50)


@flock_type
class Analysis(BaseModel):
    analyst: str
    findings: list[str] = Field(min_length=2, max_length=4)


@flock_type
class VerifiedAnalysis(BaseModel):
    analyst: str
    checker: str
    verified: bool
    notes: str


@flock_type
class Digest(BaseModel):
    headline: str
    summary: str
    analyses_verified: int


categories = [
    "world",
    "tech",
    "business",
    "sports",
    "entertainment",
    "science",
    "politics",
    "health",
]

flock = Flock()

# Stage 1: 8 analysts (parallel)
for cat in categories:
    flock.agent(f"{cat}_analyst").description(f"Analyses {cat} angles").consumes(News).publishes(
        Analysis
    )

# Stage 2: 3 fact-checkers (parallel)
for i in range(3):
    flock.agent(f"fact_checker_{i}").description("Checks an analysis").consumes(Analysis).publishes(
        VerifiedAnalysis
    )

# Stage 3: 1 editor, once all 24 checks are in (or after 60 s)
flock.agent("editor").description("Writes the digest").consumes(
    VerifiedAnalysis, batch=BatchSpec(size=len(categories) * 3, timeout=timedelta(seconds=60))
).publishes(Digest)


async def main():
    await flock.publish(
        News(
            headline="City opens its first fully automated library",
            story="The new branch lends books through robots and stays open all night. "
            "Residents and unions reacted with a mix of curiosity and concern.",
        )
    )
    await flock.run_until_idle()
    for d in await flock.store.get_by_type(Digest):
        print(f"digest: {d.headline} ({d.analyses_verified} verified analyses)")


if __name__ == "__main__":
    asyncio.run(main())
