"""One run of an agent with components: Flock's lifecycle, on our recorded path.

``evaluate`` runs initialize -> pre-consume -> pre-evaluate -> engine(s) or
the built-in evaluation -> post-evaluate and returns the outputs; the
executor records them. ``after_commit`` runs post-publish (or error) and
terminate once the outcome is durable; replay calls ``terminate`` only.

What the hooks made the agent evaluate is recorded (``inputs.rewritten``)
when it differs from the task's recorded inputs. Replay (and the resume
pre-flight check, both ``record_only``) do not record: they compare with the
record and raise ``InputsDiverged`` on a difference.

Example::

    outputs = await evaluate(kernel, calls, run, batched, builtin)
    await after_commit(run, outputs, kernel.artifacts)
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from flock_es.domain.events import EventKind, InputsRewritten, trusted_event
from flock_es.domain.ids import output_id
from flock_es.log.event_rows import dumps
from flock_es.runtime.artifacts import RunArtifacts
from flock_es.runtime.components import AgentComponent, EngineComponent
from flock_es.runtime.context import TaskRun
from flock_es.runtime.engine_llm import EngineLLM
from flock_es.runtime.eval_types import EvalInputs, EvalResult
from flock_es.runtime.kernel import Kernel
from flock_es.runtime.model_calls import ModelCalls
from flock_es.runtime.store import Artifact, artifact_of

__all__ = ["InputsDiverged", "after_commit", "evaluate", "terminate", "uses_components"]

Builtin = Callable[[list[BaseModel]], Awaitable[list[BaseModel]]]


class InputsDiverged(Exception):
    """Replay: the components made a task evaluate other inputs than recorded."""

    def __init__(self, expected: Any, actual: Any) -> None:
        super().__init__("inputs after the agent's components differ from the record")
        self.expected = expected
        self.actual = actual


def uses_components(run: TaskRun) -> bool:
    return bool(run.agent.utilities or run.agent.engines)


def _active(components: list[Any]) -> list[Any]:
    # sorted() is stable: equal priorities keep the order they were added in (Flock's rule).
    return sorted(
        (c for c in components if c.config.enabled), key=lambda c: getattr(c, "priority", 0)
    )


def _records(arts: list[Artifact], state: dict[str, Any]) -> dict[str, Any]:
    """The evaluated inputs as the log holds them (JSON values only)."""
    data = {"inputs": [{"type": a.type, "payload": a.payload} for a in arts], "state": state}
    normal: dict[str, Any] = json.loads(dumps(data))
    return normal


def _check_inputs(
    kernel: Kernel, calls: ModelCalls, run: TaskRun, raw: list[Artifact], inputs: EvalInputs
) -> None:
    """Record the evaluated inputs if the hooks changed them; replay compares instead."""
    now = _records(inputs.artifacts, inputs.state)
    task = run.task
    if calls.record_only:
        rec = kernel.state.rewritten_inputs.get(task.id)
        expected = {"inputs": rec["inputs"], "state": rec["state"]} if rec else _records(raw, {})
        if expected != now:
            raise InputsDiverged(expected, now)
        return
    if now == _records(raw, {}):
        return
    body = InputsRewritten(
        task_id=task.id,
        agent=run.agent.name,
        attempt=run.attempt,
        inputs=now["inputs"],
        state=now["state"],
    )
    kernel.record([trusted_event(kernel.run_id, EventKind.INPUTS_REWRITTEN, body, time.time())])


async def _run_engines(
    engines: list[EngineComponent], run: TaskRun, inputs: EvalInputs, batched: bool
) -> EvalResult:
    """Flock's engine chain: each engine's outputs are the next one's inputs."""
    agent, ctx = run.agent, run.ctx
    current, result = inputs, EvalResult()
    logs: list[str] = []
    metrics: dict[str, float] = {}
    for engine in engines:
        current = await engine.on_pre_evaluate(agent, ctx, current)
        evaluate_fn = engine.evaluate_batch if batched else engine.evaluate
        answer = await evaluate_fn(agent, ctx, current)
        if isinstance(answer, BaseModel):
            answer = EvalResult.from_object(answer, agent=agent)
        if not isinstance(answer, EvalResult):
            raise TypeError(
                f"engine {engine.display_name} of agent {agent.name!r} returned "
                f"{type(answer).__name__}; return an EvalResult or a pydantic object"
            )
        result = await engine.on_post_evaluate(agent, ctx, current, answer)
        logs.extend(result.logs)
        metrics.update(result.metrics)
        current = EvalInputs(list(result.artifacts), {**current.state, **result.state})
    return EvalResult(list(result.artifacts), current.state, metrics, logs, list(result.errors))


async def evaluate(
    kernel: Kernel, calls: ModelCalls, run: TaskRun, batched: bool, builtin: Builtin
) -> list[BaseModel]:
    """The outputs of one run of an agent that has utilities or engines."""
    agent, ctx = run.agent, run.ctx
    utilities: list[AgentComponent] = _active(agent.utilities)
    engines: list[EngineComponent] = _active(agent.engines)
    ctx.is_batch = batched
    raw = [artifact_of(kernel.artifacts.require(i)) for i in run.task.inputs]
    ctx.llm = EngineLLM(calls, run, [{"type": a.type, "payload": a.payload} for a in raw])
    for c in [*utilities, *engines]:
        await c.on_initialize(agent, ctx)
    arts = list(raw)
    for u in utilities:
        arts = list(await u.on_pre_consume(agent, ctx, arts))
    inputs = EvalInputs(arts, {})
    for u in utilities:
        inputs = await u.on_pre_evaluate(agent, ctx, inputs)
    _check_inputs(kernel, calls, run, raw, inputs)
    # The engine's model calls carry what it evaluates, as the built-in prompt does.
    ctx.llm = EngineLLM(calls, run, _records(inputs.artifacts, {})["inputs"])
    if engines:
        result = await _run_engines(engines, run, inputs, batched)
    else:
        objs = await builtin([a.obj for a in inputs.artifacts])
        result = EvalResult.from_objects(*objs, agent=agent)
    for u in utilities:
        result = await u.on_post_evaluate(agent, ctx, inputs, result)
    return result.objects()


async def after_commit(
    run: TaskRun, outcome: list[BaseModel] | Exception, artifacts: RunArtifacts
) -> None:
    """Live only, once the outcome is durable: post-publish or error, then terminate."""
    agent, ctx = run.agent, run.ctx
    utilities: list[AgentComponent] = _active(agent.utilities)
    try:
        if isinstance(outcome, Exception):
            for c in [*utilities, *_active(agent.engines)]:
                await c.on_error(agent, ctx, outcome)
        else:
            # The outputs' ids, not the task's view: a compact state forgets completed tasks.
            outs = [output_id(run.task.id, pos) for pos in range(len(outcome))]
            views = [artifacts.get(i) for i in outs]
            published = [artifact_of(v) for v in views if v is not None]
            for art in published:
                for u in utilities:
                    await u.on_post_publish(agent, ctx, art)
    finally:
        await terminate(run)


async def terminate(run: TaskRun) -> None:
    """``on_terminate`` of every utility, then every engine."""
    agent, ctx = run.agent, run.ctx
    for c in [*_active(agent.utilities), *_active(agent.engines)]:
        await c.on_terminate(agent, ctx)
