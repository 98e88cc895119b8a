"""How a model agent turns its inputs into outputs.

prompt -> call -> (tool calls -> results -> call again)* -> validate; an answer
that does not validate goes back to the model with the error, a bounded number
of times (``RetryPolicy.validation_retries``). Every call goes through
``Engine.call_model`` and every tool through ``call_tool``, keyed
(task id, call index), so resume and replay follow the same conversation from
the record without calling anything.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flock_es.domain.events import EventKind, ModelAttempt, ToolCalled, make_event
from flock_es.errors import OutputValidationError, ReplayMiss
from flock_es.models.base import ModelRequest, ModelResponse
from flock_es.models.prompt import build_messages, output_schema, parse_output
from flock_es.models.retry import FailedAttempt
from flock_es.models.tools import run_tool, tool_specs
from flock_es.redaction import redact_text
from flock_es.runtime.agent import Agent
from flock_es.runtime.context import AgentContext

if TYPE_CHECKING:
    from flock_es.runtime.engine import Engine


def retry_message(error: str) -> dict[str, Any]:
    """What the model is told when its answer did not validate."""
    return {
        "role": "user",
        "content": (
            f"Your answer did not validate: {error}\n"
            "Answer again with a single JSON object that validates against the schema, "
            "and nothing else."
        ),
    }


async def run_model_agent(
    engine: Engine, ctx: AgentContext, agent: Agent, inputs: list[BaseModel]
) -> list[BaseModel]:
    """Ask the agent's model for one output of each published type, validated."""
    if not agent.publishes:
        raise OutputValidationError(f"agent {agent.name!r} has no .publishes(); nothing to ask for")
    schema = output_schema(agent.publishes, agent.fan_out)
    payloads = [{"type": type(o).__name__, "payload": o.model_dump(mode="json")} for o in inputs]
    tool_names = [t.__name__ for t in agent.tools]
    messages = build_messages(agent.name, agent.description, payloads, schema, tool_names)
    if ctx.context:
        # Only what the engine let through the visibility filter reaches the model.
        earlier = "\n".join(
            f"- {a.type} (by {a.produced_by}): {json.dumps(a.payload, ensure_ascii=False)}"
            for a in ctx.context
        )
        messages.insert(
            1, {"role": "user", "content": "Earlier artifacts of this conversation:\n" + earlier}
        )
    tools = tool_specs(agent.tools) if agent.tools else []
    policy = engine.retry
    rounds = policy.validation_retries + 1
    last: OutputValidationError | None = None
    for round_no in range(1, rounds + 1):
        response, call_index = await _answer(engine, ctx, agent, payloads, schema, messages, tools)
        try:
            return parse_output(response.content, agent.publishes, agent.fan_out)
        except OutputValidationError as exc:
            last = exc
            will_retry = round_no < rounds
            if not response.recorded:
                record_attempt(
                    engine,
                    ctx,
                    agent,
                    call_index,
                    FailedAttempt(
                        round_no,
                        "invalid_output",
                        str(exc),
                        None,
                        will_retry,
                        0.0,
                        response.latency_ms,
                    ),
                )
            messages = [
                *messages,
                {"role": "assistant", "content": response.content},
                retry_message(str(exc)),
            ]
    assert last is not None
    raise OutputValidationError(
        f"the answer did not validate after {rounds} attempt(s): {last}", raw=last.raw
    )


async def _answer(
    engine: Engine,
    ctx: AgentContext,
    agent: Agent,
    payloads: list[dict[str, Any]],
    schema: dict[str, Any],
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
) -> tuple[ModelResponse, int]:
    """One answer of the model, after any tool calls it makes; ``messages`` grows in place."""
    for _ in range(engine.retry.max_tool_rounds + 1):
        request = ModelRequest(
            model=agent.model or engine.default_model,
            agent=agent.name,
            description=agent.description,
            inputs=payloads,
            output_schema=schema,
            messages=list(messages),
            settings=dict(agent.settings),
            tools=tools,
        )
        call_index = ctx.call_index
        response = await engine.call_model(ctx, agent, request)
        if not response.tool_calls or not tools:
            return response, call_index
        messages.append(
            {
                "role": "assistant",
                "content": response.content or None,
                "tool_calls": [
                    {
                        "id": tc["id"],
                        "type": "function",
                        "function": {"name": tc["name"], "arguments": tc["arguments"]},
                    }
                    for tc in response.tool_calls
                ],
            }
        )
        for pos, tc in enumerate(response.tool_calls):
            result = await call_tool(engine, ctx, agent, call_index, pos, tc)
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": result})
    raise OutputValidationError(
        f"agent {agent.name!r} still calling tools after {engine.retry.max_tool_rounds} rounds",
        raw=json.dumps(response.tool_calls),
    )


def record_attempt(
    engine: Engine, ctx: AgentContext, agent: Agent, call_index: int, failed: FailedAttempt
) -> None:
    """Record a model-call attempt that gave no usable answer (``model.attempt``)."""
    body = ModelAttempt(
        task_id=ctx.task_id,
        agent=agent.name,
        call_index=call_index,
        attempt=failed.attempt,
        outcome=failed.outcome,
        error=redact_text(failed.error),
        status=failed.status,
        will_retry=failed.will_retry,
        retry_in=failed.retry_in,
        latency_ms=failed.latency_ms,
        limiter=failed.limiter,
    )
    engine.record([make_event(engine.run_id, EventKind.MODEL_ATTEMPT, body, time.time())])


async def call_tool(
    engine: Engine,
    ctx: AgentContext,
    agent: Agent,
    call_index: int,
    position: int,
    call: dict[str, Any],
) -> str:
    """Run a tool the model asked for, or serve its recorded result (resume, replay).

    Keyed (task id, model call index, position). The result is durable before
    the model hears it, so a tool with side effects never runs twice for one call.
    """
    key = (ctx.task_id, call_index, position)
    rec = engine.state.tool_calls.get(key)
    if rec is not None:
        return rec.result
    if engine.record_only:
        raise ReplayMiss(f"no recorded tool call {key[1]}.{key[2]} for task {key[0]}")
    t0 = time.perf_counter()
    result, error = await run_tool(agent.tools, str(call["name"]), str(call["arguments"]))
    result = redact_text(result)
    body = ToolCalled(
        task_id=ctx.task_id,
        agent=agent.name,
        call_index=call_index,
        position=position,
        call_id=str(call.get("id", "")),
        tool=str(call["name"]),
        arguments=redact_text(str(call["arguments"])),
        result=result,
        error=redact_text(error) if error else None,
        duration_ms=(time.perf_counter() - t0) * 1000.0,
    )
    # Awaited: the result must be durable before the model hears it.
    await engine.emit([make_event(engine.run_id, EventKind.TOOL_CALLED, body, time.time())])
    return result
