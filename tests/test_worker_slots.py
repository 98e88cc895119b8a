"""A worker runs at most ``--concurrency`` agents at once; a task whose agent is done
frees its slot while its outcome commits (``Worker.committing``), so the bound is
on agents running, not on outcomes on their way to the log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.cli.run_driver import share
from flock_es.domain.events import EventKind
from flock_es.log.backends import open_reader


@flock_type
class SlotIn(BaseModel):
    n: int


@flock_type
class SlotOut(BaseModel):
    n: int


def test_a_shared_run_runs_at_most_concurrency_agents_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    running = [0, 0]  # now, most

    async def work(x: SlotIn) -> SlotOut:
        running[0] += 1
        running[1] = max(running)
        await asyncio.sleep(0.01)
        running[0] -= 1
        return SlotOut(n=x.n)

    async def main() -> None:
        flock = Flock(db=db)
        flock.agent("work").consumes(SlotIn).publishes(SlotOut).with_function(work)
        share(flock, no_execute=False, concurrency=3, shared=True)
        await flock.publish_many(SlotIn(n=i) for i in range(40))
        await flock.run_until_idle()
        await flock.close()

    asyncio.run(main())
    assert running[1] == 3  # reached, never passed
    with open_reader(db) as r:
        run_id = r.resolve_run("latest")
        done = [e for e in r.iter_events(run_id) if e.kind is EventKind.TASK_COMPLETED]
    assert len(done) == 40
