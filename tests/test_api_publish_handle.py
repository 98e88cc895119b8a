"""``.publishes(...)`` returns Flock's handle: ``.visibility(v)``/``.only_for(...)`` for
the types just declared; every other builder method chains on the agent."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from flock_es import AgentBuilder, Flock, PrivateVisibility, flock_type
from flock_es.log import LogReader
from flock_es.runtime.agent import Agent
from flock_es.runtime.replay import Replayer


@flock_type
class HandleAsk(BaseModel):
    text: str


@flock_type
class HandleSecret(BaseModel):
    text: str


@flock_type
class HandleNotice(BaseModel):
    text: str


def recorder(into: list[str]):  # type: ignore[no-untyped-def]
    return lambda x: into.append(x.text)


def build(flock: Flock, seen: dict[str, list[str]]) -> AgentBuilder:
    speaker = (
        flock.agent("speaker")
        .consumes(HandleAsk)
        .publishes(HandleSecret)
        .visibility(PrivateVisibility(agents={"friend"}))
        .publishes(HandleNotice)
        .with_function(
            lambda a: [HandleSecret(text=f"s:{a.text}"), HandleNotice(text=f"n:{a.text}")]
        )
    )
    for name in ("friend", "stranger"):
        seen[name] = []
        flock.agent(name).consumes(HandleSecret).consumes(HandleNotice).with_function(
            recorder(seen[name])
        )
    return speaker


async def test_visibility_on_the_handle_covers_only_the_types_just_declared(
    db_path: Path,
) -> None:
    flock = Flock(db=db_path)
    seen: dict[str, list[str]] = {}
    speaker = build(flock, seen)
    assert type(speaker) is AgentBuilder  # the handle hands the agent's builder back
    await flock.publish(HandleAsk(text="hi"))
    await flock.run_until_idle()
    await flock.close()
    assert sorted(seen["friend"]) == ["n:hi", "s:hi"]
    assert seen["stranger"] == ["n:hi"]
    vis = {a.type: a.visibility for a in flock.state.artifacts.values()}
    assert vis["HandleSecret"] == {"kind": "private", "agents": ["friend"]}
    assert vis["HandleNotice"]["kind"] == "public"

    with LogReader(db_path) as reader:
        recorded = list(reader.events(flock.run_id))
    report = await Replayer(recorded, fresh_agents()).run()
    assert report.identical, report.divergence


def fresh_agents() -> dict[str, Agent]:
    again = Flock()
    build(again, {})
    return again.agents


def test_only_for_on_the_handle_and_chaining_after_it() -> None:
    flock = Flock()
    b = (
        flock.agent("a")
        .consumes(HandleAsk)
        .publishes(HandleSecret)
        .only_for("x", "x")
        .publishes(HandleNotice)
    )
    b.description("chained after the handle")
    agent = flock.get_agent("a")
    assert agent.type_visibility == {"HandleSecret": {"kind": "private", "agents": ["x"]}}
    assert agent.output_visibility is None and agent.description == "chained after the handle"
    assert agent.publishes == [HandleSecret, HandleNotice]
