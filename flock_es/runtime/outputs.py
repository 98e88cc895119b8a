"""What counts as an agent's output, shared by the engine and replay."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from flock_es.domain.registry import type_name
from flock_es.errors import OutputValidationError
from flock_es.runtime.agent import Agent


def normalise_outputs(result: Any) -> list[BaseModel]:
    """A function agent's return value as a list of outputs (None means none)."""
    if result is None:
        return []
    if isinstance(result, BaseModel):
        return [result]
    if isinstance(result, list | tuple):
        out = []
        for r in result:
            if not isinstance(r, BaseModel):
                raise OutputValidationError(
                    f"an agent function returned {type(r).__name__}; expected pydantic models"
                )
            out.append(r)
        return out
    raise OutputValidationError(
        f"an agent function returned {type(result).__name__}; expected a pydantic model, "
        "a list of them, or None"
    )


def check_output_types(agent: Agent, outputs: list[BaseModel]) -> None:
    """Reject outputs of a type the agent does not declare in ``.publishes()``."""
    publishes = agent.publishes
    if not publishes:
        return
    for o in outputs:  # a loop, not all() over a generator: once per agent run
        if type(o) not in publishes:
            break
    else:
        return  # the declared classes themselves: no names to compare
    allowed = {type_name(t) for t in agent.publishes}
    for o in outputs:
        if type_name(type(o)) not in allowed:
            raise OutputValidationError(
                f"agent {agent.name!r} produced {type_name(type(o))}, but publishes only "
                f"{', '.join(sorted(allowed))}"
            )
