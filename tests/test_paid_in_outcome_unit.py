"""A model agent's answer commits in its task's outcome unit (issue 14 (e)).

Nothing awaits between a plain model agent's last answer and its outcome (outputs,
``task.completed``, what they schedule; or ``task.failed``), so the answer's
``model.called`` goes in that unit, ahead of the outputs it leads to: atomic with
them, durable before anything acts on them. An answer the agent moves on from
(it did not validate: another call follows) is queued at once, ahead of its failed
attempt, so a crash during the next call does not re-pay it; resume serves it.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flock_es import Flock
from flock_es.domain.events import Event, EventKind
from flock_es.log.reader import LogReader
from flock_es.log.writer import LogWriter
from flock_es.models.base import ModelRequest, ModelResponse
from tests.conftest import run_cli


class Ask(BaseModel):
    text: str


class Reply(BaseModel):
    text: str


def _units(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The kinds of every unit the log writer is handed, in order."""
    units: list[list[str]] = []
    submit, enqueue = LogWriter.submit, LogWriter.enqueue

    def spy_submit(self: LogWriter, events: list[Event]) -> Any:
        units.append([e.kind.value for e in events])
        return submit(self, events)

    def spy_enqueue(self: LogWriter, events: list[Event]) -> None:
        units.append([e.kind.value for e in events])
        enqueue(self, events)

    monkeypatch.setattr(LogWriter, "submit", spy_submit)
    monkeypatch.setattr(LogWriter, "enqueue", spy_enqueue)
    return units


class FirstInvalid:
    """Answers with invalid JSON first, then a valid reply; reads the log meanwhile."""

    name = "first-invalid"

    def __init__(self, db: Path) -> None:
        self.db = db
        self.calls = 0
        self.durable_before_second: list[int] = []

    def check(self) -> None:
        return None

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.calls == 1:
            return ModelResponse(content="not json")
        await asyncio.sleep(0.05)  # the first answer's unit commits meanwhile
        with LogReader(self.db) as reader:
            events = reader.events(reader.resolve_run("latest"))
        self.durable_before_second.append(sum(e.kind is EventKind.MODEL_CALLED for e in events))
        return ModelResponse(content=json.dumps({"text": "ok"}))


async def test_a_model_agent_s_answer_commits_with_its_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = _units(monkeypatch)
    flock = Flock("offline", db=tmp_path / "a.db")
    flock.agent("replier").consumes(Ask).publishes(Reply)
    await flock.publish(Ask(text="hello there, world"))
    await flock.run_until_idle()
    await flock.close()
    outcome = [u for u in units if "task.completed" in u]
    assert outcome == [["model.called", "artifact.published", "task.completed"]]
    assert not [u for u in units if u == ["model.called"]]  # never a unit of its own


async def test_an_answer_that_did_not_validate_is_durable_before_the_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = _units(monkeypatch)
    db = tmp_path / "b.db"
    flock = Flock("first-invalid", db=db)
    client = FirstInvalid(db)
    flock.clients.register("first-invalid", client)
    flock.agent("replier").consumes(Ask).publishes(Reply)
    await flock.publish(Ask(text="hello there, world"))
    await flock.run_until_idle()
    await flock.close()
    assert client.calls == 2 and client.durable_before_second == [1]
    assert ["model.called"] in units  # the first answer, queued as the agent moved on
    with LogReader(db) as reader:
        kinds = [
            (e.kind.value, e.body.get("call_index"))
            for e in reader.events(reader.resolve_run("latest"))
            if e.body.get("agent", e.body.get("produced_by")) == "replier"
            and e.kind is not EventKind.TASK_STARTED
        ]
    assert kinds == [
        ("task.scheduled", None),
        ("model.called", 0),
        ("model.attempt", 0),
        ("model.called", 1),
        ("artifact.published", None),
        ("task.completed", None),
    ]


PROGRAM = textwrap.dedent(
    """
    import json, os
    from pathlib import Path
    from pydantic import BaseModel
    from flock_es import Flock
    from flock_es.models.base import ModelResponse

    class Ask(BaseModel):
        text: str

    class Reply(BaseModel):
        text: str

    COUNT = Path(os.environ["CALLS_FILE"])

    class Flaky:
        name = "flaky"
        def check(self):
            return None
        async def complete(self, request):
            with COUNT.open("a") as f:
                f.write(f"{len(request.messages)}\\n")
            if len(request.messages) == 2:  # the first call: an answer that won't validate
                return ModelResponse(content="not json")
            if os.environ.get("CRASH") == "1":
                import asyncio
                await asyncio.sleep(0.1)  # what was queued before this call commits
                os._exit(3)  # the process dies during the second call
            return ModelResponse(content=json.dumps({"text": "ok"}))

    flock = Flock("flaky")
    flock.clients.register("flaky", Flaky())
    flock.agent("replier").consumes(Ask).publishes(Reply)

    async def main():
        await flock.publish(Ask(text="hello there, world"))
        await flock.run_until_idle()
    """
)


def test_a_crash_during_the_retry_does_not_re_pay_the_first_answer(tmp_path: Path) -> None:
    prog = tmp_path / "flaky.py"
    prog.write_text(PROGRAM)
    db = tmp_path / "c.db"
    calls = tmp_path / "calls.txt"
    env = {"CALLS_FILE": str(calls), "CRASH": "1"}
    crashed = run_cli(["run", prog, "--db", db, "-q"], env=env)
    assert crashed.returncode == 3, crashed.stderr
    assert calls.read_text().split() == ["2", "4"]  # the first call, then the retry
    calls.write_text("")
    resumed = run_cli(["resume", "latest", "--db", db, "-q"], env={**env, "CRASH": "0"})
    assert resumed.returncode == 0, resumed.stderr
    # Only the retry is made again: the first answer is served from the record.
    assert calls.read_text().split() == ["4"]
    with LogReader(db) as reader:
        events = reader.events(reader.resolve_run("latest"))
    called = [e.body["call_index"] for e in events if e.kind is EventKind.MODEL_CALLED]
    assert called == [0, 1]
    assert [e.kind for e in events if e.kind is EventKind.TASK_COMPLETED]
