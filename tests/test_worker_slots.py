"""A worker runs at most ``--concurrency`` agents at once; a task whose agent is done
frees its slot while its outcome commits (``Worker.committing``), so the bound is
on agents running, not on outcomes on their way to the log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
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


def test_a_claimed_task_ended_elsewhere_pays_for_no_further_attempt(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A worker that stalled past its lease went on, once awake, with the attempts it
    had queued (for a slot, after a 429) of tasks another worker had ended: each
    paid again. An attempt now first checks the task is still open in the caught-up
    state. Here the catch-up that brings the other worker's end is simulated: the
    first attempt ends the task in the state, then fails with a 503."""
    from flock_es.domain.events import TaskStatus
    from flock_es.errors import TransientModelError
    from flock_es.models.base import ModelRequest, ModelResponse
    from flock_es.models.retry import RetryPolicy

    db = tmp_path / "shared.db"
    flock = Flock("stalled", db=db, retry=RetryPolicy(base_delay=0.01, jitter=0.0))

    class EndedWhileAway:
        name = "stalled"
        calls = 0

        def check(self) -> None:
            return None

        async def complete(self, request: ModelRequest) -> ModelResponse:
            self.calls += 1
            for t in flock.state.tasks.values():  # as a catch-up of another's end would
                t.status = TaskStatus.COMPLETED
            raise TransientModelError("busy (HTTP 503)", "server_error", 503)

    client = EndedWhileAway()
    flock.clients.register("stalled", client)
    flock.agent("asker").consumes(SlotIn).publishes(SlotOut)

    async def main() -> None:
        share(flock, no_execute=False, concurrency=1, shared=True)
        await flock.publish(SlotIn(n=1))
        await flock.run_until_idle()
        await flock.close()

    asyncio.run(main())
    assert client.calls == 1  # not the 4 attempts of its policy
    assert "was taken over by another worker" in capfd.readouterr().err
