"""Orders published with Flock's partition_key (a sharding label on the artifact)."""

import asyncio

from pydantic import BaseModel

from flock_es import Flock, flock_type


@flock_type
class Order(BaseModel):
    item: str


@flock_type
class Packed(BaseModel):
    item: str


flock = Flock()
flock.agent("packer").consumes(Order).publishes(Packed).with_function(lambda o: Packed(item=o.item))


async def main() -> None:
    await flock.publish(Order(item="tea"), partition_key="eu-west")
    await flock.publish_many([Order(item="jam"), Order(item="oil")], partition_key="us-east")
    await flock.publish(Order(item="salt"))
    await flock.run_until_idle()
    for a in await flock.store.get_artifacts_by_type("Order"):
        print(a.payload["item"], a.partition_key)


if __name__ == "__main__":
    asyncio.run(main())
