"""A program for the litellm crash test: one model agent with a side-effecting tool.

The model comes from ``--model`` (an ``openai/...`` string pointed at the
loopback server through ``OPENAI_API_BASE``). The tool appends a line to the
file named by ``$TOOL_LOG``, so the test can count how often it really ran.
"""

import os

from pydantic import BaseModel, Field

from flock_es import Flock, flock_type
from flock_es.models.retry import RetryPolicy


@flock_type
class Order(BaseModel):
    item: str


@flock_type
class Receipt(BaseModel):
    summary: str
    total: int = Field(ge=0)


def charge_card(item: str, amount: int) -> str:
    """Charge the customer's card (a side effect that must not happen twice)."""
    with open(os.environ["TOOL_LOG"], "a") as f:
        f.write(f"{item} {amount}\n")
    return f"charged {amount} for {item}"


flock = Flock(retry=RetryPolicy(base_delay=0.01, timeout=60))
flock.agent("cashier").description("Charges orders").consumes(Order).publishes(Receipt).with_tools(
    [charge_card]
)


async def main() -> None:
    await flock.publish(Order(item="teapot"))
