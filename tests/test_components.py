"""Agent components, orchestrator components and custom engines (issue 15).

Real runs on real SQLite files; replay through the real ``Replayer`` or the
CLI; the crash test SIGKILLs a real ``flock-es run`` and resumes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flock_es import (
    AgentComponent,
    BatchSpec,
    EngineComponent,
    EvalInputs,
    Flock,
    OrchestratorComponent,
    ScheduleDecision,
    flock_type,
)
from flock_es.domain.events import Event, EventKind
from flock_es.errors import DefinitionError
from flock_es.log import LogReader
from flock_es.runtime.replay import Replayer
from tests.conftest import EXAMPLES, ROOT, event_kinds, kill_cli_when, run_cli


@flock_type
class Note(BaseModel):
    text: str


@flock_type
class Loud(BaseModel):
    text: str


Calls = list[tuple[str, str]]


class Recorder(AgentComponent):
    """Notes every hook it sees, tagged with its own name."""

    log: Any = None

    def _note(self, hook: str) -> None:
        self.log.append((self.display_name, hook))

    async def on_initialize(self, agent: Any, ctx: Any) -> None:
        self._note("initialize")

    async def on_pre_consume(self, agent: Any, ctx: Any, inputs: Any) -> Any:
        self._note("pre_consume")
        return inputs

    async def on_pre_evaluate(self, agent: Any, ctx: Any, inputs: Any) -> Any:
        self._note("pre_evaluate")
        return inputs

    async def on_post_evaluate(self, agent: Any, ctx: Any, inputs: Any, result: Any) -> Any:
        self._note("post_evaluate")
        return result

    async def on_post_publish(self, agent: Any, ctx: Any, artifact: Any) -> None:
        self._note(f"post_publish {artifact.type}")

    async def on_error(self, agent: Any, ctx: Any, error: Exception) -> None:
        self._note(f"error {type(error).__name__}")

    async def on_terminate(self, agent: Any, ctx: Any) -> None:
        self._note("terminate")


class Shout(EngineComponent):
    log: Any = None

    async def on_initialize(self, agent: Any, ctx: Any) -> None:
        self.log.append(("engine", "initialize"))

    async def evaluate(self, agent: Any, ctx: Any, inputs: EvalInputs) -> Any:
        self.log.append(("engine", "evaluate"))
        note = inputs.first_as(Note)
        assert note is not None
        return Loud(text=note.text.upper())  # a bare object is wrapped, as in Flock

    async def on_terminate(self, agent: Any, ctx: Any) -> None:
        self.log.append(("engine", "terminate"))


class Upper(AgentComponent):
    """Rewrites what the agent evaluates (recorded as inputs.rewritten)."""

    suffix: str = "!"

    async def on_pre_evaluate(self, agent: Any, ctx: Any, inputs: EvalInputs) -> EvalInputs:
        arts = [
            dataclasses.replace(a, payload={"text": a.payload["text"].upper() + self.suffix})
            for a in inputs.artifacts
        ]
        return EvalInputs(arts, {"rewritten": True})


def _events(db: Path, run: str = "latest") -> list[Event]:
    with LogReader(db) as reader:
        return reader.events(reader.resolve_run(run))


async def _replay(events: list[Event], flock: Flock) -> Any:
    return await Replayer(events, flock.agents, hooks=flock.orchestrator_hooks()).run()


def test_hooks_run_in_flocks_order_by_priority(db_path: Path) -> None:
    log: Calls = []
    flock = Flock(db=db_path)
    flock.agent("shout").consumes(Note).publishes(Loud).with_utilities(
        Recorder(name="late", priority=5, log=log), Recorder(name="early", priority=1, log=log)
    ).with_engines(Shout(log=log))

    async def go() -> list[Loud]:
        await flock.publish(Note(text="hi"))
        await flock.run_until_idle()
        await flock.close()
        return await flock.store.get_by_type(Loud)

    assert asyncio.run(go()) == [Loud(text="HI")]
    by_hook = [h for who, h in log if who in ("early", "engine")]
    assert by_hook == [
        "initialize",
        "initialize",
        "pre_consume",
        "pre_evaluate",
        "evaluate",
        "post_evaluate",
        "post_publish Loud",
        "terminate",
        "terminate",
    ]
    # Each hook runs the priority-1 component before the priority-5 one.
    for hook in ("initialize", "pre_consume", "pre_evaluate", "post_evaluate", "terminate"):
        order = [who for who, h in log if h == hook and who != "engine"]
        assert order == ["early", "late"], hook
    assert "inputs.rewritten" not in event_kinds(db_path)  # nothing changed: nothing recorded


def test_error_hook_runs_after_the_failure_is_recorded(db_path: Path) -> None:
    log: Calls = []
    flock = Flock(db=db_path)

    def boom(note: Note) -> Loud:
        raise ValueError("no")

    flock.agent("bad").consumes(Note).publishes(Loud).with_function(boom).with_utilities(
        Recorder(log=log)
    )

    async def go() -> None:
        await flock.publish(Note(text="x"))
        await flock.run_until_idle()
        await flock.close()

    asyncio.run(go())
    hooks = [h for _, h in log]
    assert hooks == [
        "initialize",
        "pre_consume",
        "pre_evaluate",
        "error ValueError",
        "terminate",
    ]
    assert event_kinds(db_path).count("task.failed") == 1


def test_rewritten_inputs_are_recorded_and_replay_compares_them(db_path: Path) -> None:
    seen: list[str] = []

    def build(suffix: str) -> Flock:
        flock = Flock(db=db_path)

        def echo(n: Note) -> Loud:
            seen.append(n.text)
            return Loud(text=n.text)

        flock.agent("echo").consumes(Note).publishes(Loud).with_function(echo).with_utilities(
            Upper(suffix=suffix)
        )
        return flock

    flock = build("!")

    async def go() -> None:
        await flock.publish(Note(text="quiet"))
        await flock.run_until_idle()
        await flock.close()

    asyncio.run(go())
    assert seen == ["QUIET!"]
    events = _events(db_path)
    [rewritten] = [e.body for e in events if e.kind is EventKind.INPUTS_REWRITTEN]
    assert rewritten["inputs"] == [{"type": "Note", "payload": {"text": "QUIET!"}}]
    assert rewritten["state"] == {"rewritten": True}

    report = asyncio.run(_replay(events, build("!")))
    assert report.identical, report.divergence
    changed = asyncio.run(_replay(events, build("?")))
    assert not changed.identical
    assert changed.divergence is not None
    assert "inputs after components" in changed.divergence.what


class NoSecrets(OrchestratorComponent):
    asked: int = 0

    async def on_before_schedule(
        self, orchestrator: Any, artifact: Any, agent: Any, sub: Any
    ) -> Any:
        self.asked += 1
        if "secret" in artifact.payload["text"]:
            return ScheduleDecision.SKIP
        return ScheduleDecision.CONTINUE


class Lifecycle(OrchestratorComponent):
    log: Any = None

    async def on_initialize(self, orchestrator: Any) -> None:
        self.log.append("initialize")

    async def on_artifact_published(self, orchestrator: Any, artifact: Any) -> Any:
        if artifact.payload.get("text") == "drop":
            return None
        if artifact.type == "Loud":  # agent outputs pass through here too
            return dataclasses.replace(artifact, payload={"text": artifact.payload["text"] + "?"})
        return artifact

    async def on_agent_scheduled(self, orchestrator: Any, agent: Any, arts: Any, task: Any) -> None:
        self.log.append(f"scheduled {agent.name}")

    async def on_orchestrator_idle(self, orchestrator: Any) -> None:
        self.log.append("idle")

    async def on_shutdown(self, orchestrator: Any) -> None:
        self.log.append("shutdown")


def _orchestrated(db: Path, log: list[str], veto: bool = True) -> Flock:
    flock = Flock(db=db)
    if veto:
        flock.add_component(NoSecrets())
    flock.add_component(Lifecycle(log=log))
    flock.agent("shout").consumes(Note).publishes(Loud).with_function(
        lambda n: Loud(text=n.text.upper())
    )
    return flock


def test_orchestrator_components_veto_block_transform_and_replay_follows(db_path: Path) -> None:
    log: list[str] = []
    flock = _orchestrated(db_path, log)

    async def go() -> list[Loud]:
        await flock.publish_many([Note(text="hello"), Note(text="a secret"), Note(text="drop")])
        await flock.run_until_idle()
        await flock.close()
        return await flock.store.get_by_type(Loud)

    assert asyncio.run(go()) == [Loud(text="HELLO?")]
    assert log == ["initialize", "scheduled shout", "idle", "shutdown"]
    events = _events(db_path)
    vetoes = [e.body for e in events if e.kind is EventKind.SCHEDULE_VETOED]
    assert sorted(v["decision"] for v in vetoes) == ["BLOCKED", "SKIP"]
    assert {v["component"] for v in vetoes} == {"NoSecrets", "on_artifact_published"}
    # The blocked artifact is on the board, as in Flock; it only scheduled nothing.
    assert [
        e.body["payload"]["text"] for e in events if e.kind is EventKind.ARTIFACT_PUBLISHED
    ] == [
        "hello",
        "a secret",
        "drop",
        "HELLO?",
    ]

    # Replay follows the recorded vetoes: a program whose component would let the
    # secret through still replays identical (nothing is decided again).
    report = asyncio.run(_replay(events, _orchestrated(db_path, [], veto=False)))
    assert report.identical, report.divergence


def test_example_runs_offline_and_replays_identical_through_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "components.db"
    out = run_cli(["run", EXAMPLES / "components.py", "--db", db])
    assert out.returncode == 0, out.stderr
    assert "reply: Thanks! Priority 1" in out.stdout
    assert "spam filter: 1 match(es) refused" in out.stdout
    kinds = event_kinds(db)
    assert "schedule.vetoed" in kinds and "inputs.rewritten" in kinds
    replay = run_cli(["replay", "latest", "--db", db])
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout
    assert "0 model calls made" in replay.stdout


def _model_calls(db: Path) -> list[tuple[str, int]]:
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT json_extract(body, '$.task_id'), json_extract(body, '$.call_index') "
                "FROM events WHERE kind = 'model.called' ORDER BY seq"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    return [(str(t), int(i)) for t, i in rows]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_resume_after_sigkill_serves_the_engines_recorded_calls(tmp_path: Path) -> None:
    db = tmp_path / "engine.db"
    program = ROOT / "tests" / "programs" / "engine_crash.py"
    # Killed once the first answers (outlines) are durable, before any answer is.
    assert kill_cli_when(["run", program, "--db", db, "-q"], lambda: len(_model_calls(db)) >= 1)
    before = _model_calls(db)
    assert 1 <= len(before) < 6
    out = run_cli(["resume", "latest", "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    calls = _model_calls(db)
    # Two calls per task, three tasks: each (task, index) paid exactly once.
    assert Counter(calls).most_common(1)[0][1] == 1
    assert len(calls) == 6
    assert calls[: len(before)] == before
    events = _events(db)
    answers = [e.body["payload"] for e in events if e.kind is EventKind.ARTIFACT_PUBLISHED]
    assert sorted(a["n"] for a in answers if "outline" in a) == [0, 1, 2]
    replay = run_cli(["replay", "latest", "--db", db])
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout


class Tally(EngineComponent):
    """Batch-aware, as Flock's SimpleBatchEngine: one output per flushed batch."""

    async def evaluate(self, agent: Any, ctx: Any, inputs: EvalInputs) -> Any:
        raise AssertionError("a BatchSpec subscription gets evaluate_batch")

    async def evaluate_batch(self, agent: Any, ctx: Any, inputs: EvalInputs) -> Any:
        assert ctx.is_batch
        return Loud(text="+".join(n.text for n in inputs.all_as(Note)))


def test_an_engine_gets_a_whole_batch_through_evaluate_batch(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("tally").consumes(Note, batch=BatchSpec(size=3)).publishes(Loud).with_engines(
        Tally()
    )

    async def go() -> list[Loud]:
        await flock.publish_many([Note(text=t) for t in "abc"])
        await flock.run_until_idle()
        await flock.close()
        return await flock.store.get_by_type(Loud)

    assert asyncio.run(go()) == [Loud(text="a+b+c")]
    report = asyncio.run(_replay(_events(db_path), flock))
    assert report.identical, report.divergence


def test_components_are_checked_where_they_are_declared() -> None:
    flock = Flock()
    with pytest.raises(DefinitionError, match="OrchestratorComponent"):
        flock.add_component(Recorder())  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="EngineComponent"):
        flock.agent("a").with_engines(Recorder())  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="function or engines"):
        flock.agent("b").with_function(lambda n: n).with_engines(Tally())
