"""A wide fan-out for the worker tests and benchmarks.

``main`` publishes FANOUT_N items in one transaction. With FANOUT_KIND=model
(default) each goes to a model agent with simulated latency
(``offline?latency=FANOUT_LATENCY``); with FANOUT_KIND=cpu each goes to a plain
function that burns FANOUT_CPU_MS of CPU.
"""

import os
import time

from pydantic import BaseModel

from flock_es import Flock, flock_type

N = int(os.environ.get("FANOUT_N", "500"))
KIND = os.environ.get("FANOUT_KIND", "model")
LATENCY = os.environ.get("FANOUT_LATENCY", "0.2")
CPU_S = float(os.environ.get("FANOUT_CPU_MS", "5")) / 1000.0


@flock_type
class Item(BaseModel):
    n: int
    text: str


@flock_type
class Summary(BaseModel):
    n: int
    summary: str


def burn(item: Item) -> Summary:
    end = time.process_time() + CPU_S
    x = 0
    while time.process_time() < end:
        x += 1
    return Summary(n=item.n, summary=f"item {item.n}")


flock = Flock(model=f"offline?latency={LATENCY}")
if KIND == "cpu":
    flock.agent("burner").consumes(Item).publishes(Summary).with_function(burn)
else:
    flock.agent("summarise").description("Summarise the item").consumes(Item).publishes(Summary)


async def main() -> None:
    await flock.publish_many(Item(n=i, text=f"Item number {i} of the fan-out.") for i in range(N))
    await flock.run_until_idle()
