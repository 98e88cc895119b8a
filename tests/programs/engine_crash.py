"""A custom engine that makes two model calls per task, with simulated latency.

The crash test kills ``flock-es run`` after the first calls are recorded and
resumes it: the engine's recorded calls must be served, not paid again.
"""

import os

from pydantic import BaseModel

from flock_es import AgentContext, EngineComponent, EvalInputs, EvalResult, Flock, flock_type
from flock_es.runtime.agent import Agent

LATENCY = os.environ.get("ENGINE_LATENCY", "0.3")


@flock_type
class Question(BaseModel):
    n: int
    text: str


@flock_type
class Outline(BaseModel):
    points: list[str]


@flock_type
class Answer(BaseModel):
    n: int
    outline: list[str]
    text: str


class TwoStepEngine(EngineComponent):
    """Outline first, then the answer: two recorded calls through ``ctx.llm``."""

    async def evaluate(self, agent: Agent, ctx: AgentContext, inputs: EvalInputs) -> EvalResult:
        q, llm = inputs.first_as(Question), ctx.llm
        assert q is not None and llm is not None  # a Question consumed, a model agent
        outline = await llm.structured(Outline, f"Outline an answer to: {q.text}")
        draft = await llm.complete(f"Answer {q.text} along {outline.points}")
        return EvalResult.from_object(
            Answer(n=q.n, outline=outline.points, text=draft.content[:80]), agent=agent
        )


flock = Flock(f"offline?latency={LATENCY}")
flock.agent("answerer").consumes(Question).publishes(Answer).with_engines(TwoStepEngine())


async def main() -> None:
    await flock.publish_many([Question(n=n, text=f"question number {n}") for n in range(3)])
    await flock.run_until_idle()
