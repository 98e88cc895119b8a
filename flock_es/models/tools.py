"""Python functions as model tools: their JSON schema, and calling them with the model's arguments.

A tool is a plain or async function with type-annotated parameters; its
docstring's first paragraph is the description the model sees. A plain
``def`` runs in a worker thread, so a tool that blocks (HTTP, disk) does not
stop the other agents.

Example::

    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        "Current weather in a city."
        return f"18 {unit} in {city}"

    flock.agent("reporter").consumes(Trip).publishes(Report).with_tools([get_weather])

A tool's name is its function name, or the one given to ``@flock_tool(name=...)``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from flock_es.domain.registry import tool_name
from flock_es.errors import DefinitionError

__all__ = ["Tool", "check_tools", "result_text", "run_tool", "tool_spec", "tool_specs"]

Tool = Callable[..., Any]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


@functools.lru_cache(maxsize=512)
def _arguments_model(fn: Tool) -> type[BaseModel]:
    try:
        hints = get_type_hints(fn)
    except Exception:
        hints = {}
    fields: dict[str, Any] = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[name] = (hints.get(name, Any), default)
    return create_model(f"{tool_name(fn)}_arguments", __base__=_Args, **fields)


def check_tools(agent: str, tools: Sequence[Tool]) -> list[Tool]:
    """The tools, validated: callables with distinct names whose schema can be built."""
    out: list[Tool] = []
    names: set[str] = set()
    for fn in tools:
        if not callable(fn) or not hasattr(fn, "__name__"):
            raise DefinitionError(f"agent {agent!r}: with_tools takes functions, got {fn!r}")
        name = tool_name(fn)
        if name in names:
            raise DefinitionError(f"agent {agent!r}: two tools are named {name!r}")
        try:
            _arguments_model(fn).model_json_schema()
        except Exception as exc:
            raise DefinitionError(
                f"agent {agent!r}: tool {name!r} has parameters without a JSON schema: {exc}"
            ) from None
        names.add(name)
        out.append(fn)
    return out


def tool_spec(fn: Tool) -> dict[str, Any]:
    """The OpenAI function-calling spec of ``fn`` (the format litellm takes)."""
    schema = _arguments_model(fn).model_json_schema()
    schema.pop("title", None)
    doc = inspect.getdoc(fn) or ""
    return {
        "type": "function",
        "function": {
            "name": tool_name(fn),
            "description": doc.split("\n\n", 1)[0].strip() or tool_name(fn),
            "parameters": schema,
        },
    }


def tool_specs(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    return [tool_spec(fn) for fn in tools]


def result_text(value: Any) -> str:
    """What the model is told a tool returned."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)


async def run_tool(
    tools: Sequence[Tool], name: str, arguments: str
) -> tuple[str, str | None, float]:
    """Call the tool ``name`` with the model's JSON ``arguments``.

    Returns ``(result, error, seconds)``. A bad call (unknown tool, arguments that
    do not parse or validate, an exception in the tool) is not fatal: the error
    text goes back to the model as the result, so it can correct itself.
    ``seconds`` is how long the tool ran: a plain function's time in its worker
    thread, not its wait for one (40 agents calling tools at once share a few
    threads), an ``async def``'s from its call to its result.
    """
    fn = next((t for t in tools if tool_name(t) == name), None)
    if fn is None:
        err = f"unknown tool {name!r}; available: {', '.join(tool_name(t) for t in tools)}"
        return f"error: {err}", err, 0.0
    try:
        raw = json.loads(arguments or "{}")
        if not isinstance(raw, dict):
            raise ValueError("arguments must be a JSON object")
        parsed = _arguments_model(fn).model_validate(raw)
    except (ValueError, ValidationError) as exc:
        err = f"bad arguments for {name}: {' '.join(str(exc).split())}"
        return f"error: {err}", err, 0.0
    kwargs = {k: getattr(parsed, k) for k in type(parsed).model_fields}
    took = [0.0]
    try:
        value = await _timed(fn, kwargs, took)
    except Exception as exc:
        err = f"{name} raised {type(exc).__name__}: {exc}"
        return f"error: {err}", err, took[0]
    return result_text(value), None, took[0]


async def _timed(fn: Tool, kwargs: dict[str, Any], took: list[float]) -> Any:
    """``fn(**kwargs)``'s value (a plain function in a worker thread); the seconds it
    ran are added to ``took[0]``, raised or not: a plain function's in its thread."""
    if inspect.iscoroutinefunction(fn):
        return await _awaited(fn(**kwargs), took)

    def timed() -> Any:
        t0 = time.perf_counter()
        try:
            return fn(**kwargs)
        finally:
            took[0] += time.perf_counter() - t0

    value = await asyncio.to_thread(timed)
    # A plain function that returned an awaitable: its time counts too.
    return await _awaited(value, took) if inspect.isawaitable(value) else value


async def _awaited(value: Awaitable[Any], took: list[float]) -> Any:
    t0 = time.perf_counter()
    try:
        return await value
    finally:
        took[0] += time.perf_counter() - t0
