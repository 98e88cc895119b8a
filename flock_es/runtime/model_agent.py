"""How a model agent turns its inputs into outputs: prompt, call, parse."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from flock_es.errors import OutputValidationError
from flock_es.models.base import ModelRequest
from flock_es.models.prompt import build_messages, output_schema, parse_output
from flock_es.runtime.agent import Agent
from flock_es.runtime.context import AgentContext

if TYPE_CHECKING:
    from flock_es.runtime.engine import Engine


async def run_model_agent(
    engine: Engine, ctx: AgentContext, agent: Agent, inputs: list[BaseModel]
) -> list[BaseModel]:
    """Ask the agent's model for one output of each published type, validated."""
    if not agent.publishes:
        raise OutputValidationError(f"agent {agent.name!r} has no .publishes(); nothing to ask for")
    schema = output_schema(agent.publishes)
    payloads = [{"type": type(o).__name__, "payload": o.model_dump(mode="json")} for o in inputs]
    request = ModelRequest(
        model=agent.model or engine.default_model,
        agent=agent.name,
        description=agent.description,
        inputs=payloads,
        output_schema=schema,
        messages=build_messages(agent.name, agent.description, payloads, schema),
        settings=dict(agent.settings),
    )
    response = await engine.call_model(ctx, agent, request)
    return parse_output(response.content, agent.publishes)
