"""Every event body the runtime writes validates against its pydantic model.

The hot path builds some bodies as plain dicts (``trusted_event``); this keeps
them honest.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from flock_es import BatchSpec, Flock
from flock_es.domain.validate import check_body
from flock_es.log import LogReader


class Ask(BaseModel):
    text: str


class Answer(BaseModel):
    text: str


async def test_all_emitted_bodies_validate(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("model").consumes(Ask).publishes(Answer)
    flock.agent("fn").consumes(Ask).with_function(lambda a: Answer(text=a.text))
    flock.agent("bad").consumes(Ask).with_function(lambda a: 1 / 0)
    flock.agent("batch").consumes(
        Answer, batch=BatchSpec(size=10, timeout=timedelta(seconds=0.1))
    ).with_function(lambda xs: None)
    flock.agent("picky").consumes(Ask, where=lambda a: a.missing).with_function(lambda a: None)  # type: ignore[attr-defined]
    await flock.publish_many([Ask(text="one two three four."), Ask(text="five six seven.")])
    await flock.invoke("fn", Ask(text="direct"), publish_outputs=False)
    await flock.run_until_idle()
    await flock.close()
    with LogReader(db_path) as r:
        events = r.events(flock.run_id)
    kinds = {e.kind for e in events}
    core = {
        "run.started",
        "run.finished",
        "artifact.published",
        "task.scheduled",
        "task.started",
        "model.called",
        "task.completed",
        "task.failed",
        "batch.buffered",
        "predicate.failed",
    }
    assert core <= {k.value for k in kinds}  # every core kind was exercised
    for e in events:
        check_body(e.kind, e.body)
