"""One agent, two subscriptions that both match one artifact.

By default each matching subscription runs (two tasks); with
``FLOCK_ES_TEST_ONCE=1`` the Flock is built with ``once_per_agent=True``
(flock-core's rule: one task).
"""

import asyncio
import os

from pydantic import BaseModel

from flock_es import Flock, flock_type


@flock_type
class Ticket(BaseModel):
    text: str
    priority: int


@flock_type
class Handled(BaseModel):
    text: str


flock = Flock(once_per_agent=os.environ.get("FLOCK_ES_TEST_ONCE") == "1")
flock.agent("desk").consumes(Ticket, where=lambda t: t.priority > 3).consumes(
    Ticket, tags={"vip"}
).publishes(Handled).with_function(lambda t: Handled(text=t.text))


async def main() -> None:
    await flock.publish(Ticket(text="printer on fire", priority=5), tags={"vip"})
    await flock.publish(Ticket(text="coffee machine", priority=1), tags={"vip"})
    await flock.run_until_idle()
    print(len(await flock.store.get_by_type(Handled)), "handled")


if __name__ == "__main__":
    asyncio.run(main())
