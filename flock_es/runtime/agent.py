"""``Agent``: an agent as declared, what the runtime reads to match, run and record
it (its spec, its function, its error handlers).

Programs declare agents with the builder (``runtime/agent_builder.py``); the
runtime imports only this. Example::

    agent = Agent(name="summariser", publishes=[Summary], function=summarise)
    outputs = await agent.call_function(run, [story], batched=False)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from flock_es.domain import registry
from flock_es.domain.events import AgentSpec
from flock_es.domain.subscriptions import Subscription
from flock_es.domain.visibility import Identity

if TYPE_CHECKING:
    from flock_es.models.mcp_client import McpServers
    from flock_es.runtime.components import AgentComponent, EngineComponent
    from flock_es.runtime.context import AgentContext

__all__ = ["Agent", "AgentFunction", "ErrorHandler", "HasContext", "positional_count"]

AgentFunction = Callable[..., Any]


class HasContext(Protocol):
    """What carries an agent's context (``TaskRun``): built when first read."""

    @property
    def ctx(self) -> AgentContext: ...


ErrorHandler = Callable[..., Any]


@dataclass(slots=True)
class Agent:
    """An agent as declared. The runtime reads it; users build it with ``AgentBuilder``."""

    name: str
    description: str = ""
    subscriptions: list[Subscription] = field(default_factory=list)
    publishes: list[type[BaseModel]] = field(default_factory=list)
    max_concurrency: int | None = None
    error_handlers: list[ErrorHandler] = field(default_factory=list)
    function: AgentFunction | None = None
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    self_trigger: bool = False
    fn_wants_ctx: bool = False
    labels: frozenset[str] = frozenset()
    tenant: str | None = None
    # Give the agent the earlier artifacts of its correlation (see ``with_context``).
    with_context: bool = False
    # Visibility of this agent's outputs: per type name, else the default (None = public).
    output_visibility: dict[str, Any] | None = None
    type_visibility: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Python functions the model may call (see ``with_tools``).
    tools: list[Callable[..., Any]] = field(default_factory=list)
    # How many outputs of a type a model agent answers with (``publishes(fan_out=N)``).
    fan_out: dict[str, int] = field(default_factory=dict)
    # Lifecycle hooks (``with_utilities``) and custom evaluation (``with_engines``).
    utilities: list[AgentComponent] = field(default_factory=list)
    engines: list[EngineComponent] = field(default_factory=list)
    # MCP servers whose tools the model may call (``with_mcps``), the Flock's
    # registry of them, and per-server tool whitelists.
    mcp_servers: list[str] = field(default_factory=list)
    mcp: McpServers | None = None
    mcp_whitelist: dict[str, list[str]] = field(default_factory=dict)

    def identity(self) -> Identity:
        return Identity(self.name, self.labels, self.tenant)

    def visibility_for(self, type_name: str) -> dict[str, Any] | None:
        return self.type_visibility.get(type_name, self.output_visibility)

    @property
    def kind(self) -> str:
        if self.engines:
            return "engine"
        return "function" if self.function is not None else "model"

    def spec(self) -> AgentSpec:
        return AgentSpec(
            name=self.name,
            description=self.description,
            kind=self.kind,
            model=self.model,
            publishes=[registry.type_name(t) for t in self.publishes],
            subscriptions=[s.spec() for s in self.subscriptions],
            max_concurrency=self.max_concurrency,
            labels=sorted(self.labels),
            tenant=self.tenant,
            tools=[registry.tool_name(t) for t in self.tools],
        )

    async def call_function(self, run: HasContext, inputs: list[BaseModel], batched: bool) -> Any:
        """Call the agent's function on ``inputs``; ``run.ctx`` is built only if it takes one."""
        assert self.function is not None
        arg: Any = inputs if batched or len(inputs) != 1 else inputs[0]
        result = self.function(arg, run.ctx) if self.fn_wants_ctx else self.function(arg)
        if isinstance(result, BaseModel):  # the common answer: skip the awaitable checks
            return result
        if inspect.isawaitable(result):
            result = await result
        return result

    async def handle_error(self, ctx: AgentContext, exc: BaseException) -> None:
        for handler in self.error_handlers:
            n = positional_count(handler)
            out: Any = handler(ctx, exc) if n >= 2 else handler(exc)
            if inspect.isawaitable(out):
                await out


def positional_count(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` takes (2 for ``*args``; 1 if it cannot be
    told): whether an agent function or error handler is given the context too."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds)
