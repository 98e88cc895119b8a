"""A join for the replay tests: an order and its payment, correlated by order id."""

from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.domain.subscriptions import JoinSpec


@flock_type
class Order(BaseModel):
    order_id: int
    item: str


@flock_type
class Payment(BaseModel):
    order_id: int
    amount: int


@flock_type
class Shipment(BaseModel):
    order_id: int
    item: str
    amount: int


def ship(pair: list[BaseModel]) -> Shipment:
    order, payment = pair
    assert isinstance(order, Order) and isinstance(payment, Payment)
    return Shipment(order_id=order.order_id, item=order.item, amount=payment.amount)


flock = Flock()
flock.agent("shipper").consumes(Order, Payment, join=JoinSpec(by=lambda x: x.order_id)).publishes(
    Shipment
).with_function(ship)


async def main() -> None:
    await flock.publish_many(
        [Order(order_id=i, item=f"item {i}") for i in range(4)]
        + [Payment(order_id=i, amount=10 * i) for i in reversed(range(4))]
    )
    await flock.run_until_idle()
