"""A model agent that talks to an OpenAI-compatible server at $LOOPBACK_URL (tests only)."""

import os

from pydantic import BaseModel, Field

from flock_es import Flock, flock_type

URL = os.environ.get("LOOPBACK_URL", "http://127.0.0.1:9/v1")


@flock_type
class Question(BaseModel):
    text: str


@flock_type
class Answer(BaseModel):
    text: str
    confidence: int = Field(ge=1, le=5)


flock = Flock()
flock.agent("answerer").description("Answers a question").consumes(Question).publishes(
    Answer
).model("openai/loopback-model", api_base=URL, api_key="sk-loopback-test-key-123456")


async def main() -> None:
    await flock.publish_many(Question(text=f"What is {i} + {i}?") for i in range(3))
    await flock.run_until_idle()
