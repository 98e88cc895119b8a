"""A program for the crash tests: fan-out, a chain, a batch, and model latency.

Six jobs are published in one transaction. Each job fans out to three agents;
``triage`` starts a chain (triage -> planner -> writer) of model agents with
simulated latency; ``tagger`` emits two tags per job, which ``collector``
batches by four. Every payload is derived from the inputs, so two runs on the
same inputs produce the same artifacts (up to the random ids of the seeds).
"""

import asyncio
import os

from pydantic import BaseModel, Field

from flock_es import BatchSpec, Flock, flock_type

LATENCY = os.environ.get("CRASH_LATENCY", "0.08")


@flock_type
class Job(BaseModel):
    n: int
    text: str


@flock_type
class Triage(BaseModel):
    summary: str
    priority: int = Field(ge=1, le=5)


@flock_type
class Plan(BaseModel):
    steps: list[str] = Field(min_length=2, max_length=3)


@flock_type
class Draft(BaseModel):
    n_steps: int
    first: str


@flock_type
class Tag(BaseModel):
    job: int
    label: str


@flock_type
class Count(BaseModel):
    job: int
    chars: int


@flock_type
class Tally(BaseModel):
    count: int


flock = Flock(model=f"offline?latency={LATENCY}")

flock.agent("triage").description("Triage a job").consumes(Job).publishes(Triage)
flock.agent("planner").description("Plan the work").consumes(Triage).publishes(
    Plan
).max_concurrency(2)


async def write(plan: Plan) -> Draft:
    await asyncio.sleep(0.01)
    return Draft(n_steps=len(plan.steps), first=plan.steps[0])


flock.agent("writer").consumes(Plan).publishes(Draft).with_function(write)


async def tag(job: Job) -> list[Tag]:
    await asyncio.sleep(0.02 * (job.n % 3))
    return [Tag(job=job.n, label="even" if job.n % 2 == 0 else "odd"), Tag(job=job.n, label="all")]


flock.agent("tagger").consumes(Job).publishes(Tag).with_function(tag)
flock.agent("counter").consumes(Job).publishes(Count).with_function(
    lambda job: Count(job=job.n, chars=len(job.text))
)
flock.agent("collector").consumes(Tag, batch=BatchSpec(size=4, timeout=30)).publishes(
    Tally
).with_function(lambda tags: Tally(count=len(tags)))


async def main() -> None:
    await flock.publish_many(
        Job(n=i, text=f"Job number {i}. It needs a plan and a careful review of step {i}.")
        for i in range(6)
    )
    await flock.run_until_idle()
