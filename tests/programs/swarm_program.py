"""$SWARM_N model agents that all consume each of $SWARM_TICKETS tickets (one by
default): a burst against one provider. With $SWARM_VIP set, one more agent
(``vip``, registered last) consumes each ticket with ``priority=5``. With
$TOOL_LOG set, each agent has a tool that appends a line to that file (a side
effect the salvage tests count): the offline model calls it once a task.

The model comes from ``--model`` (``openai/test-model`` with ``OPENAI_API_BASE``
pointing at the loopback server). Used by the rate-limit tests and
``bench/bench_ratelimit.py``.
"""

import os

from pydantic import BaseModel, Field

from flock_es import Flock, flock_type
from flock_es.models.retry import RetryPolicy


@flock_type
class Ticket(BaseModel):
    text: str = Field(min_length=5)


@flock_type
class Tag(BaseModel):
    label: str


def file_ticket(text: str) -> str:
    """File the ticket in the tracker (a side effect that must not happen twice)."""
    with open(os.environ["TOOL_LOG"], "a") as f:
        f.write(text + "\n")
    return "filed"


flock = Flock(retry=RetryPolicy(base_delay=0.2, max_delay=5.0, timeout=30))
for i in range(int(os.environ.get("SWARM_N", "40"))):
    agent = flock.agent(f"a{i:03d}").consumes(Ticket).publishes(Tag)
    if os.environ.get("TOOL_LOG"):
        agent.with_tools([file_ticket])
if os.environ.get("SWARM_VIP"):
    flock.agent("vip").consumes(Ticket, priority=5).publishes(Tag)


async def main() -> None:
    tickets = int(os.environ.get("SWARM_TICKETS", "1"))
    await flock.publish_many(
        [Ticket(text=f"The printer is on fire again ({n})") for n in range(tickets)]
    )
