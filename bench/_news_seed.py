"""Workload (a)'s program, shared by the benches that run it: the news seed's types
and wiring (eight analysts on one ``News``, an editor batching their eight
``Analysis`` outputs into a ``Digest``). The agents' bodies are the caller's: each
bench instruments them its own way.

Example::

    flock = Flock(db=db)
    wire_news(flock, analyse, edit)
    await flock.publish(News(headline="h"))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from pydantic import BaseModel

from flock_es import BatchSpec, Flock

ANALYSTS = 8


class News(BaseModel):
    headline: str


class Analysis(BaseModel):
    category: str


class Digest(BaseModel):
    headline: str
    total: int


def wire_news(
    flock: Flock,
    analyse: Callable[[News], Awaitable[Analysis]],
    edit: Callable[[list[Analysis]], Awaitable[Digest]],
    batch_timeout: float = 30.0,
) -> None:
    """The seed's agents on ``flock``: ``analyse`` eight times, then ``edit`` on the batch."""
    for i in range(ANALYSTS):
        flock.agent(f"analyst{i}").consumes(News).publishes(Analysis).with_function(analyse)
    flock.agent("editor").consumes(
        Analysis, batch=BatchSpec(size=ANALYSTS, timeout=timedelta(seconds=batch_timeout))
    ).publishes(Digest).with_function(edit)
