"""``Flock(max_depth=)``: a chain of agent runs stops at its limit; a fan-out does not.

Two agents that feed each other ran until stopped (235,449 runs in a minute), every
run a paid call with model agents. flock-core stops any agent at 1,000 runs between
idles, which also stops a fan-out of 1,001 items. Here a task is as deep as the
deepest of its inputs (0 for a publish from outside) and its outputs one deeper; a
task at ``max_depth`` (default 1,000) is refused as a recorded ``circuit.tripped``.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from textual.widgets import Static

from flock_es import BatchSpec, Flock, flock_type
from flock_es.errors import DefinitionError
from flock_es.log import LogReader
from flock_es.tui import MonitorApp
from tests.conftest import run_cli
from tests.test_tui_app import settle


@flock_type
class Ask(BaseModel):
    n: int = 0


@flock_type
class Reply(BaseModel):
    n: int = 0


def events(db: Path, run_id: str) -> list[tuple[str, dict[str, object]]]:
    with LogReader(db) as r:
        return [(e.kind.value, e.body) for e in r.events(run_id)]


async def ping_pong(flock: Flock) -> Flock:
    """Two agents that feed each other, a loop nothing else ends, run on ``flock`` from
    one Ask until idle; ``flock``, closed."""
    flock.agent("asker").consumes(Reply).publishes(Ask).with_function(lambda r: Ask(n=r.n + 1))
    flock.agent("replier").consumes(Ask).publishes(Reply).with_function(lambda a: Reply(n=a.n))
    await flock.publish(Ask(n=0))
    await flock.run_until_idle()
    await flock.close()
    return flock


async def test_agents_feeding_each_other_stop_at_max_depth(db_path: Path) -> None:
    flock = await ping_pong(Flock(db=db_path, max_depth=10))
    log = events(db_path, flock.run_id)
    depths = [b.get("depth", 0) for k, b in log if k == "task.scheduled"]
    assert depths == list(range(10))  # ten runs, each on the last one's output
    [trip] = [b for k, b in log if k == "circuit.tripped"]
    assert trip["depth"] == 10 and trip["limit"] == 10 and trip["agent"] == "replier"
    outputs = [b.get("depth") for k, b in log if k == "artifact.published"]
    assert outputs == [None, *range(1, 11)]  # the publish from outside records none
    assert flock.state.agents["replier"].tripped == 1
    assert next(b for k, b in log if k == "run.started")["max_depth"] == 10


async def test_a_fan_out_of_any_size_is_one_run_deep(db_path: Path) -> None:
    flock = Flock(db=db_path, max_depth=2)
    flock.agent("reply").consumes(Ask).publishes(Reply).with_function(lambda a: Reply(n=a.n))
    flock.agent("count").consumes(Reply, batch=BatchSpec(size=100)).with_function(lambda rs: None)
    flock.agent("each").consumes(Reply).with_function(lambda r: None)
    await flock.publish_many([Ask(n=i) for i in range(3000)])  # past DEFER_AT: deferred
    await flock.run_until_idle()
    await flock.close()
    by_agent = {a.name: a for a in flock.state.agents.values()}
    assert by_agent["reply"].scheduled == 3000 and by_agent["each"].scheduled == 3000
    assert by_agent["count"].scheduled == 30
    assert not [k for k, _ in events(db_path, flock.run_id) if k == "circuit.tripped"]


async def test_an_artifact_past_max_depth_is_refused_before_it_joins_a_batch(
    db_path: Path,
) -> None:
    """The loop goes through a batch flushed by its timer: the deep artifact is refused
    as it arrives, not buffered (else it would wait out the timer, then be refused with
    whatever shallower members the batch holds by then)."""
    flock = Flock(db=db_path, max_depth=4)
    flock.agent("asker").consumes(Reply).publishes(Ask).with_function(lambda r: Ask(n=r.n + 1))
    flock.agent("replier").consumes(
        Ask, batch=BatchSpec(size=100, timeout=timedelta(milliseconds=20))
    ).publishes(Reply).with_function(lambda asks: Reply(n=asks[0].n))
    await flock.publish(Ask(n=0))
    await flock.run_until_idle()
    await flock.close()
    log = events(db_path, flock.run_id)
    scheduled = [(b["reason"], b.get("depth", 0)) for k, b in log if k == "task.scheduled"]
    assert scheduled == [("batch_timeout", 0), ("match", 1), ("batch_timeout", 2), ("match", 3)]
    [trip] = [b for k, b in log if k == "circuit.tripped"]
    assert trip["depth"] == 4 and trip["agent"] == "replier"
    assert not [k for k, _ in log if k == "batch.buffered"][2:]  # the deep one never was
    assert (
        not flock.state.batches.get(("replier", 0))
        or not flock.state.batches[("replier", 0)].members
    )  # the refused member left the batch: it does not trip again


async def test_a_run_without_max_depth_records_no_depths(db_path: Path) -> None:
    flock = await ping_pong(Flock(db=db_path, max_depth=None, max_agent_iterations=5))
    log = events(db_path, flock.run_id)
    assert not any("depth" in b or "max_depth" in b for _, b in log), log
    [trip] = [b for k, b in log if k == "circuit.tripped"]  # the count breaker, as before
    assert trip["limit"] == 5 and "depth" not in trip


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "3"])
def test_max_depth_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(DefinitionError, match="max_depth"):
        Flock(max_depth=bad)  # type: ignore[arg-type]


LOOP = """
from pydantic import BaseModel
from flock_es import Flock, flock_type

@flock_type
class Ask(BaseModel):
    n: int

@flock_type
class Reply(BaseModel):
    n: int

flock = Flock(FLOCK_ARGS)
flock.agent("asker").consumes(Reply).publishes(Ask).with_function(lambda r: Ask(n=r.n + 1))
flock.agent("replier").consumes(Ask).publishes(Reply).with_function(lambda a: Reply(n=a.n))

async def main():
    await flock.publish(Ask(n=0))
    await flock.run_until_idle()
"""


def test_the_default_stops_a_loop_and_replay_keeps_the_recorded_limit(tmp_path: Path) -> None:
    program, db = tmp_path / "loop.py", tmp_path / "run.db"
    program.write_text(textwrap.dedent(LOOP).replace("FLOCK_ARGS", ""))
    out = run_cli(["run", program, "--db", db], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "tasks      1000 done, 0 failed" in out.stderr, out.stderr
    assert "a chain of 1000 agent runs reached max_depth" in out.stderr, out.stderr
    show = run_cli(["show", "latest", "--db", db])
    assert "replier: tripped 1× (max_depth: a chain of 1000 agent runs)" in show.stdout
    # The program now says otherwise; the run's own limit, recorded, is what replays.
    program.write_text(textwrap.dedent(LOOP).replace("FLOCK_ARGS", "max_depth=None"))
    replay = run_cli(["replay", "latest", "--db", db, "--program", program])
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.strip().endswith("identical"), replay.stdout[-2000:]


async def test_the_tui_says_why_a_loop_stopped(db_path: Path) -> None:
    await ping_pong(Flock(db=db_path, max_depth=10))
    app = MonitorApp(db_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot, app, 30)
        banner = str(app.query_one("#banner", Static).render())
        assert "CIRCUIT BREAKER: 1 match(es) refused: a chain of 10 agent runs" in banner, banner
