"""Six items, each for a model agent (``summarizer``, at the OpenAI-compatible server at
$LOOPBACK_URL) and a function agent (``checker``): the replay tests have the server
refuse the summarizer's calls for good (HTTP 400, 401, 404)."""

import os

from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.models.retry import RetryPolicy

URL = os.environ.get("LOOPBACK_URL", "http://127.0.0.1:9/v1")


@flock_type
class Item(BaseModel):
    n: int


@flock_type
class Summary(BaseModel):
    text: str


@flock_type
class Checked(BaseModel):
    n: int


flock = Flock(retry=RetryPolicy(base_delay=0.01, max_delay=0.1, timeout=10))
flock.agent("summarizer").description("Summarize an item").consumes(Item).publishes(Summary).model(
    "openai/loopback-model", api_base=URL, api_key="sk-loopback-test-key-123456"
)
flock.agent("checker").consumes(Item).publishes(Checked).with_function(lambda i: Checked(n=i.n))


async def main() -> None:
    await flock.publish_many(Item(n=i) for i in range(6))
    await flock.run_until_idle()
