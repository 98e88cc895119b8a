"""A model agent that uses the tools of an MCP server (examples/mcp_server.py).

flock-es run examples/mcp_tools.py
flock-es replay latest        # identical, and needs no MCP server

The server runs as a subprocess speaking MCP on stdio. The model is offered
its tools namespaced as in Flock (``weather__forecast``, ``weather__advice``);
each call and its result is recorded, so resume and replay serve them from
the log. The default offline model calls every offered tool once, then
answers from what they returned.
"""

import asyncio
import sys
from pathlib import Path

from pydantic import BaseModel

from flock_es import Flock, StdioServerParameters, flock_type


@flock_type
class Trip(BaseModel):
    city: str
    days: int


@flock_type
class TripPlan(BaseModel):
    city: str
    forecast: str
    packing: str


flock = Flock()
flock.add_mcp(
    "weather",
    StdioServerParameters(
        command=sys.executable, args=[str(Path(__file__).with_name("mcp_server.py"))]
    ),
)
flock.agent("planner").description("Plans what to pack for a trip").consumes(Trip).publishes(
    TripPlan
).with_mcps(["weather"])


async def main():
    await flock.publish(Trip(city="Oslo", days=3))
    await flock.run_until_idle()
    for plan in await flock.store.get_by_type(TripPlan):
        print(plan.forecast)
        print(f"packing: {plan.packing}")


if __name__ == "__main__":
    asyncio.run(main())
