"""The blackboard semantics of issue 2, through the public API, on a real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from flock_es import AgentContext, BatchSpec, EventKind, Flock, TaskStatus, flock_type
from flock_es.log import LogReader


@flock_type
class Seed(BaseModel):
    text: str
    n: int = 0


@flock_type
class Step(BaseModel):
    text: str
    stage: int = 1


@flock_type
class Final(BaseModel):
    summary: str
    count: int = Field(ge=0)


@flock_type
class Other(BaseModel):
    note: str


def events(db: Path, run_id: str) -> list[tuple[str, dict[str, object]]]:
    with LogReader(db) as r:
        return [(e.kind.value, e.body) for e in r.events(run_id)]


async def test_fan_out_runs_every_matching_agent_in_parallel(db_path: Path) -> None:
    flock = Flock("offline?latency=0.2", db=db_path)
    for i in range(5):
        flock.agent(f"a{i}").consumes(Seed).publishes(Step)
    await flock.publish(Seed(text="hello world. a second sentence here."))
    await flock.run_until_idle()
    await flock.close()
    steps = await flock.store.get_by_type(Step)
    assert len(steps) == 5
    kinds = [k for k, _ in events(db_path, flock.run_id)]
    # All five started before the first one completed: they overlapped.
    first_done = kinds.index("task.completed")
    assert kinds[:first_done].count("task.started") == 5


async def test_chain_and_pipeline_follow_types(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("one").consumes(Seed).with_function(lambda s: Step(text=s.text, stage=1))
    flock.agent("two").consumes(Step).with_function(
        lambda s: Final(summary=s.text.upper(), count=s.stage)
    )
    await flock.publish(Seed(text="abc"))
    await flock.run_until_idle()
    finals = await flock.store.get_by_type(Final)
    assert [f.summary for f in finals] == ["ABC"]
    await flock.close()


async def test_where_routes_conditionally(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("small").consumes(Seed, where=lambda s: s.n < 10).with_function(
        lambda s: Other(note=f"small {s.n}")
    )
    flock.agent("big").consumes(
        Seed, where=[lambda s: s.n >= 10, lambda s: s.n < 100]
    ).with_function(lambda s: Other(note=f"big {s.n}"))
    await flock.publish_many([Seed(text="x", n=n) for n in (1, 50, 500)])
    await flock.run_until_idle()
    notes = sorted(o.note for o in await flock.store.get_by_type(Other))
    assert notes == ["big 50", "small 1"]
    await flock.close()


async def test_batch_by_size_fires_once_per_full_batch(db_path: Path) -> None:
    flock = Flock(db=db_path)
    seen: list[int] = []

    def collect(items: list[Seed]) -> Final:
        seen.append(len(items))
        return Final(summary=",".join(i.text for i in items), count=len(items))

    flock.agent("batcher").consumes(Seed, batch=BatchSpec(size=3)).with_function(collect)
    await flock.publish_many([Seed(text=str(i)) for i in range(7)])
    await flock.run_until_idle()
    assert seen == [3, 3]
    # The seventh stays buffered (size-only batch) and is visible in the state.
    buffers = list(flock.state.batches.values())
    assert len(buffers) == 1 and len(buffers[0].members) == 1
    await flock.close()


async def test_batch_timeout_flushes_partial_batch_before_idle_returns(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("batcher").consumes(
        Seed, batch=BatchSpec(size=10, timeout=timedelta(seconds=0.3))
    ).with_function(lambda items: Final(summary="x", count=len(items)))
    await flock.publish_many([Seed(text=str(i)) for i in range(4)])
    await flock.run_until_idle()
    finals = await flock.store.get_by_type(Final)
    assert [f.count for f in finals] == [4]
    reasons = [b["reason"] for k, b in events(db_path, flock.run_id) if k == "task.scheduled"]
    assert reasons == ["batch_timeout"]
    await flock.close()


async def test_batch_timeout_in_seconds_and_dict_form(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("b").consumes(Seed, batch={"size": 2, "timeout": 0.2}).with_function(
        lambda items: Final(summary="x", count=len(items))
    )
    await flock.publish_many([Seed(text="a"), Seed(text="b"), Seed(text="c")])
    await flock.run_until_idle()
    assert sorted(f.count for f in await flock.store.get_by_type(Final)) == [1, 2]
    await flock.close()


async def test_function_agents_sync_async_multi_and_fan_out(db_path: Path) -> None:
    flock = Flock(db=db_path)

    async def fan(s: Seed) -> list[Step]:
        await asyncio.sleep(0)
        return [Step(text=f"{s.text}-{i}", stage=i) for i in range(3)]

    def both(s: Seed, ctx: AgentContext) -> tuple[Final, Other]:
        return Final(summary=ctx.agent, count=1), Other(note=ctx.run_id)

    flock.agent("fan").consumes(Seed).publishes(Step).with_function(fan)
    flock.agent("both").consumes(Seed).publishes(Final, Other).with_function(both)
    flock.agent("none").consumes(Seed).with_function(lambda s: None)
    await flock.publish(Seed(text="s"))
    await flock.run_until_idle()
    assert sorted(s.text for s in await flock.store.get_by_type(Step)) == ["s-0", "s-1", "s-2"]
    assert [f.summary for f in await flock.store.get_by_type(Final)] == ["both"]
    assert [o.note for o in await flock.store.get_by_type(Other)] == [flock.run_id]
    await flock.close()


async def test_failure_is_isolated_recorded_and_reported(db_path: Path) -> None:
    flock = Flock(db=db_path)
    handled: list[str] = []

    def boom(s: Seed) -> Step:
        raise ValueError("bad input")

    flock.agent("boom").consumes(Seed).with_function(boom).on_error(
        lambda exc: handled.append(str(exc))
    )
    flock.agent("fine").consumes(Seed).with_function(lambda s: Step(text="ok"))
    await flock.publish(Seed(text="s"))
    await flock.run_until_idle()
    status = await flock.close()
    assert handled == ["bad input"]
    assert [s.text for s in await flock.store.get_by_type(Step)] == ["ok"]
    assert status.value == "failed"
    failed = [b for k, b in events(db_path, flock.run_id) if k == "task.failed"]
    assert failed[0]["agent"] == "boom" and "bad input" in str(failed[0]["error"])
    finished = [b for k, b in events(db_path, flock.run_id) if k == "run.finished"]
    assert finished[0]["failed_tasks"] == [failed[0]["task_id"]]


async def test_wrong_output_type_fails_the_task_only(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("liar").consumes(Seed).publishes(Step).with_function(lambda s: Other(note="x"))
    await flock.publish(Seed(text="s"))
    await flock.run_until_idle()
    (task,) = flock.state.tasks.values()
    assert task.status is TaskStatus.FAILED and "publishes only Step" in (task.error or "")
    await flock.close()


async def test_defaults_never_serialise_one_agent(db_path: Path) -> None:
    flock = Flock(db=db_path)
    live = 0
    peak = 0

    async def slow(s: Seed) -> None:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.05)
        live -= 1

    flock.agent("slow").consumes(Seed).with_function(slow)
    await flock.publish_many([Seed(text=str(i)) for i in range(20)])
    await flock.run_until_idle()
    assert peak == 20
    await flock.close()


class CountingModel:
    """A real in-process model client that tracks how many calls overlap."""

    name = "counting"

    def __init__(self) -> None:
        from flock_es.models.offline import OfflineModel

        self.inner = OfflineModel(latency=0.03)
        self.live = 0
        self.peak = 0

    def check(self) -> None:
        return None

    async def complete(self, request):  # type: ignore[no-untyped-def]
        self.live += 1
        self.peak = max(self.peak, self.live)
        try:
            return await self.inner.complete(request)
        finally:
            self.live -= 1


async def test_max_concurrency_and_global_call_cap(db_path: Path) -> None:
    flock = Flock("counting", db=db_path, max_concurrent_calls=2)
    model = CountingModel()
    flock.clients.register("counting", model)
    for i in range(4):
        flock.agent(f"m{i}").consumes(Seed).publishes(Step)
    live = 0
    peak = 0

    async def slow(s: Seed) -> None:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.02)
        live -= 1

    flock.agent("f").consumes(Seed).with_function(slow).max_concurrency(3)
    await flock.publish_many([Seed(text=f"t{i}. more words here.") for i in range(4)])
    await flock.run_until_idle()
    assert peak == 3
    assert model.peak == 2
    assert len(await flock.store.get_by_type(Step)) == 16
    await flock.close()


async def test_invoke_runs_agent_exactly_once(db_path: Path) -> None:
    flock = Flock(db=db_path)
    calls: list[str] = []

    def once(s: Seed) -> Step:
        calls.append(s.text)
        return Step(text=s.text)

    flock.agent("once").consumes(Seed).publishes(Step).with_function(once)
    flock.agent("down").consumes(Step).with_function(lambda s: Final(summary=s.text, count=0))
    out = await flock.invoke("once", Seed(text="direct"), publish_outputs=False)
    await flock.run_until_idle()
    assert [o.text for o in out] == ["direct"] and calls == ["direct"]  # type: ignore[attr-defined]
    assert await flock.store.get_by_type(Final) == []
    out2 = await flock.invoke("once", Seed(text="again"))
    await flock.run_until_idle()
    assert calls == ["direct", "again"] and len(out2) == 1
    assert [f.summary for f in await flock.store.get_by_type(Final)] == ["again"]
    await flock.close()


async def test_store_accepts_name_or_class_and_run_id_is_known(db_path: Path) -> None:
    flock = Flock(db=db_path)
    assert flock.run_id.startswith("r-")
    await flock.publish(Seed(text="s"))
    by_name = await flock.store.get_artifacts_by_type("Seed")
    by_cls = await flock.store.get_artifacts_by_type(Seed)
    assert [a.id for a in by_name] == [a.id for a in by_cls]
    assert by_name[0].payload == {"text": "s", "n": 0}
    await flock.close()


async def test_every_step_is_an_event_with_deterministic_ids(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("m").consumes(Seed).publishes(Step)
    await flock.publish(Seed(text="a sentence to analyse."))
    await flock.run_until_idle()
    await flock.close()
    kinds = [k for k, _ in events(db_path, flock.run_id)]
    for kind in (
        EventKind.RUN_STARTED,
        EventKind.ARTIFACT_PUBLISHED,
        EventKind.TASK_SCHEDULED,
        EventKind.TASK_STARTED,
        EventKind.MODEL_CALLED,
        EventKind.TASK_COMPLETED,
        EventKind.RUN_FINISHED,
    ):
        assert kind.value in kinds
    from flock_es.domain import ids
    from flock_es.projection.fold import fold

    # The live state forgot the completed task (its count stays); the log has all of it.
    with LogReader(db_path) as reader:
        (task,) = fold(reader.iter_events(flock.run_id)).tasks.values()
    assert flock.state.finished == 1 and not flock.state.tasks
    assert task.id == ids.task_id(flock.run_id, "m", 0, task.inputs)
    assert task.outputs == [ids.output_id(task.id, 0)]


async def test_publishing_a_non_model_is_a_user_error(db_path: Path) -> None:
    from flock_es.errors import ArtifactValidationError

    flock = Flock(db=db_path)
    with pytest.raises(ArtifactValidationError):
        await flock.publish({"text": "x"})


@flock_type
class Coded(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}-\d{4}$")  # the offline model cannot guess this


async def test_model_output_failing_validation_fails_only_that_task(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("coder").consumes(Seed).publishes(Coded)
    flock.agent("writer").consumes(Seed).publishes(Step)
    await flock.publish(Seed(text="some words to write about."))
    await flock.run_until_idle()
    status = await flock.close()
    assert status.value == "failed"
    assert len(await flock.store.get_by_type(Step)) == 1
    failed = [b for k, b in events(db_path, flock.run_id) if k == "task.failed"]
    assert len(failed) == 1 and failed[0]["agent"] == "coder"
    assert "code" in str(failed[0]["error"]) and failed[0]["raw"]
