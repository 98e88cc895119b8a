"""Visibility: enforced at scheduling, in model context, and in store queries; AfterVisibility fires."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from flock_es import (
    AfterVisibility,
    AgentBuilder,
    AgentContext,
    Flock,
    LabelledVisibility,
    PrivateVisibility,
    PublicVisibility,
    TenantVisibility,
    flock_type,
)
from flock_es.domain.visibility import Identity, visible_to
from flock_es.log import LogReader
from flock_es.log.writer import LogWriter
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState


@flock_type
class Memo(BaseModel):
    note: str


@flock_type
class Trigger(BaseModel):
    note: str = "go"


@flock_type
class Report(BaseModel):
    summary: str


def log(db: Path, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    with LogReader(db) as r:
        return [(e.kind.value, e.body) for e in r.events(run_id)]


def recorder(into: list[str]) -> Callable[[BaseModel], None]:
    def fn(x: BaseModel) -> None:
        into.append(str(getattr(x, "note", None) or getattr(x, "summary", "")))

    return fn


def listening(flock: Flock, names: list[str], seen: dict[str, list[str]]) -> None:
    for name in names:
        seen[name] = []
        flock.agent(name).consumes(Memo).with_function(recorder(seen[name]))


async def test_each_visibility_kind_limits_who_is_scheduled(db_path: Path) -> None:
    flock = Flock(db=db_path)
    seen: dict[str, list[str]] = {}
    listening(flock, ["alice", "bob", "carol", "dave"], seen)
    flock.agents["bob"].labels = frozenset({"clearance:secret", "hr"})
    flock.agents["carol"].tenant = "acme"
    await flock.publish(Memo(note="public"), visibility=PublicVisibility())
    await flock.publish(Memo(note="private"), visibility=PrivateVisibility(agents={"alice"}))
    await flock.publish(Memo(note="labelled"), visibility=LabelledVisibility({"clearance:secret"}))
    await flock.publish(Memo(note="tenant"), visibility=TenantVisibility(tenant_id="acme"))
    await flock.publish(Memo(note="dict"), visibility={"kind": "private", "agents": ["dave"]})
    await flock.run_until_idle()
    await flock.close()
    assert seen == {
        "alice": ["public", "private"],
        "bob": ["public", "labelled"],
        "carol": ["public", "tenant"],
        "dave": ["public", "dict"],
    }


async def test_builder_labels_tenant_publishes_visibility_and_only_for(db_path: Path) -> None:
    flock = Flock(db=db_path)
    seen: dict[str, list[str]] = {}
    flock.agent("writer").consumes(Trigger).with_function(
        lambda t: [Memo(note="to-hr"), Report(summary="for acme")]
    ).publishes(Memo, visibility=LabelledVisibility({"hr"})).publishes(
        Report, visibility=TenantVisibility("acme")
    )
    flock.agent("whisper").consumes(Trigger).with_function(lambda t: Memo(note="psst")).publishes(
        Memo
    ).only_for("friend")
    builds: dict[str, Callable[[AgentBuilder], AgentBuilder]] = {
        "hr": lambda b: b.labels("hr"),
        "acme": lambda b: b.tenant("acme"),
        "friend": lambda b: b,
        "stranger": lambda b: b,
    }
    for name, build in builds.items():
        seen[name] = []
        b = flock.agent(name)
        build(b)
        b.consumes(Memo).consumes(Report).with_function(recorder(seen[name]))
    await flock.publish(Trigger())
    await flock.run_until_idle()
    await flock.close()
    assert seen == {"hr": ["to-hr"], "acme": ["for acme"], "friend": ["psst"], "stranger": []}
    spec = {
        a["name"]: a
        for k, b in log(db_path, flock.run_id)
        if k == "run.started"
        for a in b["agents"]
    }
    assert spec["hr"]["labels"] == ["hr"] and spec["acme"]["tenant"] == "acme"


async def test_after_visibility_consumers_fire_once_released(db_path: Path) -> None:
    flock = Flock(db=db_path)
    seen: dict[str, list[str]] = {}
    listening(flock, ["x", "y"], seen)
    vis = AfterVisibility(ttl=0.2, then=PrivateVisibility(agents={"x"}))
    aid = await flock.publish(Memo(note="embargoed"), visibility=vis)
    assert flock.state.unreleased  # hidden, with a release timer
    await flock.run_until_idle()  # waits for the release like a batch timeout
    await flock.close()
    assert seen == {"x": ["embargoed"], "y": []}  # Flock 0.5.7 never fires x
    events = log(db_path, flock.run_id)
    kinds = [k for k, _ in events]
    released = kinds.index("artifact.released")
    assert events[released][1] == {"artifact_id": aid}
    assert kinds.index("task.scheduled") > released
    assert not flock.state.unreleased


async def test_store_queries_made_for_an_agent_are_filtered(db_path: Path) -> None:
    flock = Flock(db=db_path)
    found: dict[str, list[str]] = {}

    async def look(t: Trigger, ctx: AgentContext) -> None:
        assert ctx.store is not None
        found[ctx.agent] = sorted(m.note for m in await ctx.store.get_by_type(Memo))
        found[ctx.agent + "/all"] = sorted(
            a.payload.get("note", "") for a in await ctx.store.list() if a.type == "Memo"
        )

    for name in ("alice", "bob"):
        flock.agent(name).consumes(Trigger).with_function(look)
    await flock.publish(Memo(note="open"))
    await flock.publish(Memo(note="for-alice"), visibility=PrivateVisibility({"alice"}))
    await flock.publish(Trigger())
    await flock.run_until_idle()
    await flock.close()
    assert found["alice"] == found["alice/all"] == ["for-alice", "open"]
    assert found["bob"] == found["bob/all"] == ["open"]
    # The program's own store is not an agent: it sees everything.
    assert len(await flock.store.get_by_type(Memo)) == 2


async def test_no_model_request_contains_an_artifact_its_agent_may_not_see(db_path: Path) -> None:
    flock = Flock(db=db_path)
    agents: dict[str, Callable[[AgentBuilder], AgentBuilder]] = {
        "alice": lambda b: b,
        "bob": lambda b: b.labels("clearance"),
        "carol": lambda b: b.tenant("acme"),
        "dave": lambda b: b,
    }
    for name, build in agents.items():
        build(flock.agent(name)).consumes(Trigger).publishes(Report).with_context()
    corr = "case-1"
    notes = {
        "MARK-public": None,
        "MARK-private-alice": PrivateVisibility({"alice"}),
        "MARK-labelled": LabelledVisibility({"clearance"}),
        "MARK-tenant": TenantVisibility("acme"),
        "MARK-embargo": AfterVisibility(ttl=0.3),
    }
    for note, vis in notes.items():
        await flock.publish(Memo(note=note), correlation_id=corr, visibility=vis)
    await flock.publish(Memo(note="MARK-other-case"), correlation_id="case-2")
    await flock.publish(Trigger(), correlation_id=corr)
    await flock.run_until_idle()
    await flock.close()

    with LogReader(db_path) as r:
        events = r.events(flock.run_id)
    state = RunState()
    requests: dict[str, str] = {}
    for e in events:
        apply(state, e)
        if e.kind.value != "model.called":
            continue
        agent = str(e.body["agent"])
        view = state.agents[agent]
        who = Identity(agent, frozenset(view.labels), view.tenant)
        text = json.dumps(e.body["request"])
        requests[agent] = text
        for art in state.artifacts.values():
            marker = art.payload.get("note", "")
            if marker and marker in text:
                assert visible_to(art.visibility, who, art.released), (agent, marker)
                assert art.correlation_id == corr, (agent, marker)
    assert set(requests) == set(agents)
    assert "MARK-private-alice" in requests["alice"]
    assert "MARK-labelled" in requests["bob"] and "MARK-tenant" in requests["carol"]
    assert "MARK-public" in requests["dave"]
    assert not any("MARK-other-case" in text for text in requests.values())
    # The context given is recorded with the task, so resume and replay see the same.
    started = [b for k, b in log(db_path, flock.run_id) if k == "task.started"]
    assert all(isinstance(b.get("context"), list) and b["context"] for b in started)


async def test_a_re_executed_task_gets_the_context_recorded_for_it(db_path: Path) -> None:
    import asyncio

    from flock_es.projection import fold as fold_events

    gate = asyncio.Event()
    got: list[list[str]] = []

    def build(block: bool) -> Flock:
        flock = Flock(db=db_path)

        async def slow(t: Trigger, ctx: AgentContext) -> None:
            got.append([a.payload["note"] for a in ctx.context])
            if block:
                await gate.wait()

        flock.agent("slow").consumes(Trigger).with_function(slow).with_context()
        flock.agent("fast").consumes(Trigger).with_function(lambda t: Memo(note="later")).publishes(
            Memo
        )
        return flock

    first = build(block=True)
    await first.publish(Memo(note="earlier"), correlation_id="c")
    await first.publish(Memo(note="secret"), correlation_id="c", visibility=PrivateVisibility("x"))
    await first.publish(Trigger(), correlation_id="c")
    while len(await first.store.get_by_type(Memo)) < 3 or not got:
        await asyncio.sleep(0.01)
    await first.engine.cancel_all()  # the process dies with "slow" still running
    await cast(LogWriter, first.engine.writer).close()
    assert got == [["earlier"]]

    with LogReader(db_path) as r:
        state = fold_events(r.events(first.run_id))
    second = build(block=False)
    second.continue_from(state)
    await second.start()
    assert second.engine.resume_pending() == 1
    await second.run_until_idle()
    await second.close()
    # "later" joined the correlation meanwhile; the re-run still sees what was recorded.
    assert got == [["earlier"], ["earlier"]]
    started = [
        b for k, b in log(db_path, first.run_id) if k == "task.started" and b["agent"] == "slow"
    ]
    assert len(started) == 2 and started[0]["context"] == started[1]["context"]
