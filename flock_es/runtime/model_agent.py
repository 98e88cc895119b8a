"""How a model agent turns its inputs into outputs.

prompt -> call -> (tool calls -> results -> call again)* -> validate; an answer
that does not validate goes back to the model with the error, a bounded number
of times (``RetryPolicy.validation_retries``). Every call and every tool goes
through ``ModelCalls``, keyed (task id, call index), so resume and replay
follow the same conversation from the record without calling anything.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from flock_es.domain.registry import type_name
from flock_es.errors import OutputValidationError
from flock_es.models.base import ModelRequest, ModelResponse
from flock_es.models.prompt import build_messages, json_text, output_schema, parse_output
from flock_es.models.retry import FailedAttempt
from flock_es.models.tools import tool_specs
from flock_es.runtime.agent import Agent
from flock_es.runtime.context import TaskRun
from flock_es.runtime.mcp import mcp_tool_specs
from flock_es.runtime.model_calls import ModelCalls
from flock_es.runtime.payloads import payload_of

__all__ = ["retry_message", "run_model_agent", "warm_schemas"]


def warm_schemas(agents: Iterable[Agent]) -> None:
    """Build (and cache) the output schema of every model agent before the run starts.

    A schema costs about a millisecond the first time (``output_schema`` caches
    it); built here, at start, that millisecond is not on the path of the first
    call of each agent. A schema that cannot be built fails the call, as before.
    """
    for agent in agents:
        if agent.function is None and not agent.engines and agent.publishes:
            with contextlib.suppress(Exception):
                output_schema(agent.publishes, agent.fan_out)


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
    calls: ModelCalls, run: TaskRun, inputs: list[BaseModel]
) -> list[BaseModel]:
    """Ask the agent's model for one output of each published type, validated."""
    agent = run.agent
    if not agent.publishes:
        raise OutputValidationError(f"agent {agent.name!r} has no .publishes(); nothing to ask for")
    schema = output_schema(agent.publishes, agent.fan_out)
    # Each input as its artifact's payload is recorded (``model_dump(mode="json")``).
    payloads = [{"type": type_name(type(o)), "payload": payload_of(o)} for o in inputs]
    # Most agents offer no tool: no specs to build, no MCP coroutine to run.
    tools = (
        [*tool_specs(agent.tools), *await mcp_tool_specs(calls, run)]
        if agent.tools or agent.mcp_servers
        else []
    )
    tool_names = [str(t["function"]["name"]) for t in tools]
    messages = build_messages(agent.name, agent.description, payloads, schema, tool_names)
    # The agent's context only if it may hold earlier artifacts (it holds them only
    # when context ids were recorded) or was built already (a component may have
    # changed it): building one per call for nothing cost ~5% of a call's path.
    ctx = run.built if run.built is not None or not run.context_ids else run.ctx
    if ctx is not None and ctx.context:
        # Only what the engine let through the visibility filter reaches the model.
        earlier = "\n".join(
            f"- {a.type} (by {a.produced_by}): {json_text(a.payload)}" for a in ctx.context
        )
        messages.insert(
            1, {"role": "user", "content": "Earlier artifacts of this conversation:\n" + earlier}
        )
    policy = calls.retry
    rounds = policy.validation_retries + 1
    last: OutputValidationError | None = None
    for round_no in range(1, rounds + 1):
        response, call_index = await _answer(calls, run, payloads, schema, messages, tools)
        try:
            return parse_output(response.content, agent.publishes, agent.fan_out)
        except OutputValidationError as exc:
            last = exc
            will_retry = round_no < rounds
            # The answer leads to no outputs: queued now, ahead of its failed attempt and
            # before the next call suspends (a crash then must not re-pay this one).
            calls.flush_paid(run)
            if not response.recorded:
                calls.attempt_failed(
                    run,
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
    calls: ModelCalls,
    run: TaskRun,
    payloads: list[dict[str, Any]],
    schema: dict[str, Any],
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
) -> tuple[ModelResponse, int]:
    """One answer of the model, after any tool calls it makes; ``messages`` grows in place."""
    agent = run.agent
    for _ in range(calls.retry.max_tool_rounds + 1):
        request = ModelRequest(
            model=agent.model or calls.default_model,
            agent=agent.name,
            description=agent.description,
            inputs=payloads,
            output_schema=schema,
            messages=list(messages),
            settings=dict(agent.settings),
            tools=tools,
        )
        call_index = run.calls
        response = await calls.call(run, request)
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
            result = await calls.tool(run, call_index, pos, tc)
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": result})
    raise OutputValidationError(
        f"agent {agent.name!r} still calling tools after {calls.retry.max_tool_rounds} rounds",
        raw=json.dumps(response.tool_calls),
    )
