"""MCP servers' tools for model agents: registration, the recorded tool list,
and dispatch of namespaced tool calls.

An agent's MCP tools are listed once per task and recorded (``mcp.listed``)
before the model sees them; each call and its result is a ``tool.called``
event with ``server`` set. Resume and replay serve both from the record, so a
replay needs no MCP server and a resumed task never calls a recorded tool
again. Tool names are namespaced as in Flock: ``{server}__{tool}``.

Example::

    flock.add_mcp("weather", StdioServerParameters(command="python", args=["server.py"]))
    flock.agent("planner").consumes(Trip).publishes(Plan).with_mcps(["weather"])
    # the model is offered "weather__forecast", ...
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flock_es.domain.events import EventKind, McpListed, make_event
from flock_es.errors import ConfigError, DefinitionError, ReplayMiss
from flock_es.models.mcp_client import TOOL_SEPARATOR, McpServerConfig, McpServers, as_parameters
from flock_es.runtime.agent import Agent

if TYPE_CHECKING:
    from flock_es.runtime.context import TaskRun
    from flock_es.runtime.model_calls import ModelCalls

__all__ = ["add_server", "mcp_server_of", "mcp_tool_specs", "parse_with_mcps"]

McpSelection = Iterable[str] | Mapping[str, Any] | Iterable[str | Mapping[str, Any]]


def add_server(
    servers: McpServers,
    name: str,
    connection_params: Any,
    *,
    enable_tools_feature: bool = True,
    tool_whitelist: list[str] | None = None,
    read_timeout_seconds: float = 300,
    **options: Any,
) -> None:
    """Register server ``name`` (``Flock.add_mcp`` delegates here)."""
    if not isinstance(name, str) or not name or TOOL_SEPARATOR in name:
        raise ConfigError(
            f"MCP server name {name!r}: a non-empty name without {TOOL_SEPARATOR!r} "
            "(tools are named {server}__{tool})"
        )
    if read_timeout_seconds <= 0:
        raise ConfigError(f"MCP server {name!r}: read_timeout_seconds must be positive")
    servers.add(
        McpServerConfig(
            name=name,
            params=as_parameters(name, connection_params),
            tool_whitelist=list(tool_whitelist) if tool_whitelist else None,
            read_timeout_seconds=float(read_timeout_seconds),
            enable_tools=enable_tools_feature,
            extra=dict(options),
        )
    )


def parse_with_mcps(
    agent: str, selection: McpSelection, registered: Iterable[str]
) -> tuple[list[str], dict[str, list[str]]]:
    """Server names and per-server tool whitelists from ``.with_mcps(...)``'s argument.

    Flock's forms: ``["a", "b"]``; ``{"a": {"tool_whitelist": [...]}, "b": {}}``;
    a mixed list of names and such dicts. Mount points (``roots``) are accepted
    and not used: flock-es does not offer MCP roots.
    """
    names: list[str] = []
    whitelists: dict[str, list[str]] = {}

    def take(name: Any, config: Any) -> None:
        if not isinstance(name, str):
            raise DefinitionError(f"agent {agent!r}: with_mcps takes server names, got {name!r}")
        if name not in names:
            names.append(name)
        if isinstance(config, Mapping) and config.get("tool_whitelist"):
            whitelists[name] = [str(t) for t in config["tool_whitelist"]]

    items: Iterable[Any] = [selection] if isinstance(selection, Mapping) else selection
    if isinstance(selection, str):
        items = [selection]
    for item in items:
        if isinstance(item, Mapping):
            for name, config in item.items():
                take(name, config)
        else:
            take(item, None)
    known = set(registered)
    unknown = [n for n in names if n not in known]
    if unknown:
        available = ", ".join(sorted(known)) or "none"
        raise DefinitionError(
            f"agent {agent!r}: MCP server(s) not registered: {', '.join(unknown)} "
            f"(registered: {available}); register them with flock.add_mcp() first"
        )
    return names, whitelists


def _allowed(agent: Agent, servers: McpServers, server: str, tool: str) -> bool:
    config = servers.configs.get(server)
    if config is not None and not config.enable_tools:
        return False
    for whitelist in (config.tool_whitelist if config else None, agent.mcp_whitelist.get(server)):
        if whitelist is not None and tool not in whitelist:
            return False
    return True


def _spec(server: str, tool: Mapping[str, Any]) -> dict[str, Any]:
    name = f"{server}{TOOL_SEPARATOR}{tool['name']}"
    schema = dict(tool.get("input_schema") or {"type": "object", "properties": {}})
    schema.pop("title", None)
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": str(tool.get("description") or "").split("\n\n", 1)[0].strip() or name,
            "parameters": schema,
        },
    }


async def mcp_tool_specs(calls: ModelCalls, run: TaskRun) -> list[dict[str, Any]]:
    """The agent's MCP tools as function specs: the task's recorded list, or a fresh one.

    A fresh list is recorded (and durable) before the model is offered it.
    """
    agent = run.agent
    if not agent.mcp_servers or agent.mcp is None:
        return []
    listing = calls.state.mcp_tools.get(run.task.id)
    if listing is None:
        if calls.record_only:
            raise ReplayMiss(f"no recorded MCP tool list for task {run.task.id} ({agent.name})")
        listing = {s: await agent.mcp.list_tools(s) for s in agent.mcp_servers}
        body = McpListed(task_id=run.task.id, agent=agent.name, servers=listing)
        await calls.recorder.emit(
            [make_event(calls.state.run_id, EventKind.MCP_LISTED, body, time.time())]
        )
    return [
        _spec(server, tool)
        for server in agent.mcp_servers
        for tool in listing.get(server, [])
        if _allowed(agent, agent.mcp, server, str(tool["name"]))
    ]


def mcp_server_of(agent: Agent, tool: str) -> tuple[str, str] | None:
    """``(server, tool name on the server)`` if ``tool`` names one of the agent's MCP tools."""
    server, sep, name = tool.partition(TOOL_SEPARATOR)
    if sep and name and server in agent.mcp_servers:
        return server, name
    return None
