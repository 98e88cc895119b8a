"""Flock's smaller API surface: publish(dict), get_agent, invoke(timeout=),
arun and the synchronous run(), on a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from flock_es import Flock, flock_type
from flock_es.errors import ArtifactValidationError, DefinitionError


@flock_type
class Task(BaseModel):
    name: str
    priority: int = Field(ge=0)


@flock_type
class Done(BaseModel):
    name: str


@flock_type
class Note(BaseModel):
    text: str


def finisher(flock: Flock) -> None:
    flock.agent("finisher").consumes(Task).publishes(Done).with_function(
        lambda t: Done(name=t.name)
    )


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "Task", "name": "deploy", "priority": 5},
        {"type": "Task", "payload": {"name": "deploy", "priority": 5}},
    ],
)
async def test_publish_takes_a_dict_naming_its_type(db_path: Path, obj: dict[str, object]) -> None:
    flock = Flock(db=db_path)
    finisher(flock)
    await flock.publish(obj)
    await flock.run_until_idle()
    await flock.close()
    assert await flock.store.get_by_type(Task) == [Task(name="deploy", priority=5)]
    assert await flock.store.get_by_type(Done) == [Done(name="deploy")]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"name": "x"}, "needs a 'type' key"),
        ({"type": "Nope", "name": "x"}, "'Nope' is not registered"),
        ({"type": "Task", "name": "x", "priority": -1}, "priority: Input should be greater"),
        (42, "got int"),
    ],
)
async def test_a_bad_dict_is_one_clear_error_before_anything_is_written(
    db_path: Path, obj: object, message: str
) -> None:
    flock = Flock(db=db_path)
    finisher(flock)
    with pytest.raises(ArtifactValidationError, match=message):
        await flock.publish(obj)  # type: ignore[arg-type]
    await flock.close()


def test_get_agent_and_the_agents_listing() -> None:
    flock = Flock()
    finisher(flock)
    assert flock.get_agent("finisher").name == "finisher"
    assert list(flock.agents) == ["finisher"]
    with pytest.raises(DefinitionError, match="no agent named 'ghost'"):
        flock.get_agent("ghost")


async def test_invoke_with_a_timeout_raises_and_the_task_stays_recorded(db_path: Path) -> None:
    async def slow(t: Task) -> Done:
        await asyncio.sleep(30)
        return Done(name=t.name)

    flock = Flock(db=db_path)
    flock.agent("slow").consumes(Task).publishes(Done).with_function(slow)
    with pytest.raises(TimeoutError):
        await flock.invoke("slow", Task(name="a", priority=1), timeout=0.2)
    assert await flock.close() == "interrupted"  # the slow task is left for resume


def test_the_synchronous_run_invokes_cascades_and_closes(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("triage").consumes(Task).publishes(Done).with_function(
        lambda t: Done(name=t.name.upper())
    )
    flock.agent("audit").consumes(Done).publishes(Note).with_function(
        lambda d: Note(text=f"audited {d.name}")
    )
    outputs = flock.run(
        "triage", Task(name="a", priority=1), {"type": "Task", "name": "b", "priority": 2}
    )
    assert outputs == [Done(name="A"), Done(name="B")]
    state = flock.state
    assert state.finished_status == "completed"
    notes = sorted(a.payload["text"] for a in state.artifacts.values() if a.type == "Note")
    assert notes == ["audited A", "audited B"]  # the cascade ran before run() returned
