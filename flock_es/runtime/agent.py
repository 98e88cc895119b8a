"""Agents and the fluent builder that declares them (spelled as in Flock)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from flock_es.domain import registry
from flock_es.domain.events import AgentSpec
from flock_es.domain.subscriptions import BatchSpec, JoinSpec, Predicate, Subscription
from flock_es.domain.visibility import Identity, Visibility
from flock_es.domain.visibility import to_dict as visibility_dict
from flock_es.errors import DefinitionError

if TYPE_CHECKING:
    from flock_es.models.mcp_client import McpServers
    from flock_es.runtime.components import AgentComponent, EngineComponent
    from flock_es.runtime.context import AgentContext

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
            n = _positional_count(handler)
            out: Any = handler(ctx, exc) if n >= 2 else handler(exc)
            if inspect.isawaitable(out):
                await out


def _positional_count(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds)


class AgentBuilder:
    """Fluent declaration of an agent; every method returns the builder.

    Example::

        flock.agent("editor").description("Writes the digest") \\
            .consumes(NewsAnalysis, batch=BatchSpec(size=8, timeout=30)) \\
            .publishes(NewsDigest)
    """

    def __init__(self, agent: Agent, on_change: Callable[[], None]) -> None:
        self.agent = agent
        self._on_change = on_change

    @property
    def name(self) -> str:
        return self.agent.name

    def _changed(self) -> AgentBuilder:
        self._on_change()
        return self

    def description(self, text: str) -> AgentBuilder:
        self.agent.description = text
        return self._changed()

    def consumes(
        self,
        *types: type[BaseModel],
        where: Predicate | Iterable[Predicate] | None = None,
        from_agents: Iterable[str] | str | None = None,
        tags: Iterable[str] | str | None = None,
        batch: BatchSpec | dict[str, Any] | None = None,
        join: JoinSpec | None = None,
        priority: int = 0,
        channels: Iterable[str] | str | None = None,
    ) -> AgentBuilder:
        """Subscribe to artifacts of ``types``; ``where`` filters them (one predicate or a list).

        Several types make an AND gate: ``.consumes(A, B)`` fires once one A and one B
        are there, ``.consumes(A, A, B)`` needs two A and one B; the surplus waits
        for the next firing. ``join=JoinSpec(by=..., within=...)`` pairs only
        artifacts with equal keys. ``from_agents``/``tags`` (alias ``channels``)
        route; ``batch`` collects; ``priority`` orders this subscription's tasks
        ahead of lower ones when concurrency is limited.
        """
        if channels is not None:
            extra = [channels] if isinstance(channels, str) else list(channels)
            tags = [*([tags] if isinstance(tags, str) else list(tags or ())), *extra]
        sub = Subscription.build(
            self.agent.name,
            len(self.agent.subscriptions),
            types,
            where,
            from_agents,
            tags,
            batch,
            join=join,
            priority=priority,
        )
        for t in types:
            registry.register(t)
        self.agent.subscriptions.append(sub)
        return self._changed()

    def publishes(
        self,
        *types: type[BaseModel],
        visibility: Visibility | dict[str, Any] | None = None,
        fan_out: int | None = None,
    ) -> PublishBuilder:
        """The types this agent produces (a model agent answers with one of each).

        ``visibility`` restricts who sees these outputs, e.g.
        ``.publishes(Diagnosis, visibility=PrivateVisibility(agents={"doctor"}))``,
        or, as in Flock, ``.publishes(Diagnosis).visibility(PrivateVisibility(...))``
        (or ``.only_for("doctor")``) on the handle this returns; every other
        builder method chains on as before.
        ``fan_out=N``: a model agent answers with N of each of these types.
        """
        if fan_out is not None and (
            isinstance(fan_out, bool) or not isinstance(fan_out, int) or fan_out < 1
        ):
            raise DefinitionError(f"agent {self.agent.name!r}: fan_out must be an integer >= 1")
        if not types:
            raise DefinitionError(
                f"agent {self.agent.name!r}: .publishes() needs at least one type"
            )
        for t in types:
            if not (isinstance(t, type) and issubclass(t, BaseModel)):
                raise DefinitionError(
                    f"agent {self.agent.name!r}: .publishes() takes pydantic model classes, got {t!r}"
                )
            registry.register(t)
            if t not in self.agent.publishes:
                self.agent.publishes.append(t)
            if visibility is not None:
                self.agent.type_visibility[registry.type_name(t)] = visibility_dict(visibility)
            if fan_out is not None:
                self.agent.fan_out[t.__name__] = fan_out
        self._changed()
        return PublishBuilder(self, types)

    def only_for(self, *agents: str) -> AgentBuilder:
        """Publish every output privately to ``agents`` (``PrivateVisibility``)."""
        if not agents or not all(isinstance(a, str) and a for a in agents):
            raise DefinitionError(f"agent {self.agent.name!r}: .only_for() takes agent names")
        self.agent.output_visibility = {"kind": "private", "agents": sorted(set(agents))}
        return self._changed()

    def labels(self, *labels: str) -> AgentBuilder:
        """Labels this agent carries; it sees ``LabelledVisibility`` artifacts it has all labels of."""
        if not all(isinstance(x, str) and x for x in labels):
            raise DefinitionError(f"agent {self.agent.name!r}: .labels() takes non-empty strings")
        self.agent.labels = self.agent.labels | frozenset(labels)
        return self._changed()

    def tenant(self, tenant_id: str) -> AgentBuilder:
        """The tenant this agent belongs to; it sees ``TenantVisibility`` artifacts of it."""
        if not isinstance(tenant_id, str) or not tenant_id:
            raise DefinitionError(f"agent {self.agent.name!r}: .tenant() takes a non-empty string")
        self.agent.tenant = tenant_id
        return self._changed()

    def with_context(self, enabled: bool = True) -> AgentBuilder:
        """Also give the agent the earlier artifacts of its correlation, as Flock does.

        Only artifacts this agent may see are included; their ids are recorded in
        ``task.started`` and the model request, so resume and replay see the same.
        A function agent finds them in ``ctx.context``.
        """
        self.agent.with_context = enabled
        return self._changed()

    def max_concurrency(self, n: int) -> AgentBuilder:
        """At most ``n`` runs of this agent at once (default: no limit)."""
        if not isinstance(n, int) or n < 1:
            raise DefinitionError(f"agent {self.agent.name!r}: max_concurrency must be >= 1")
        self.agent.max_concurrency = n
        return self._changed()

    def on_error(self, handler: ErrorHandler) -> AgentBuilder:
        """Call ``handler(exc)`` or ``handler(ctx, exc)`` when a run of this agent fails."""
        if not callable(handler):
            raise DefinitionError(f"agent {self.agent.name!r}: on_error takes a callable")
        self.agent.error_handlers.append(handler)
        return self._changed()

    def with_function(self, fn: AgentFunction) -> AgentBuilder:
        """Run ``fn`` instead of a model.

        ``fn(input)`` or ``fn(input, ctx)``, sync or async. ``input`` is the artifact
        object (a list for a batch). Return one output, several (a list or tuple,
        of the same or different types: a fan-out), or None. A plain ``def`` runs
        on the event loop, so keep it quick or make it ``async def``.
        """
        if not callable(fn):
            raise DefinitionError(f"agent {self.agent.name!r}: with_function takes a callable")
        if self.agent.engines:
            raise DefinitionError(
                f"agent {self.agent.name!r}: an agent has either a function or engines, not both"
            )
        self.agent.function = fn
        self.agent.fn_wants_ctx = _positional_count(fn) >= 2
        return self._changed()

    def model(self, model: str, **settings: Any) -> AgentBuilder:
        """Use ``model`` for this agent instead of the Flock's; ``settings`` go to the call."""
        self.agent.model = model
        self.agent.settings.update(settings)
        return self._changed()

    def with_tools(self, tools: Iterable[Callable[..., Any]]) -> AgentBuilder:
        """Let the model call these Python functions (litellm function calling).

        Each tool's typed parameters become its JSON schema, its docstring the
        description. Every call and result is recorded; resume and replay serve
        the recorded result instead of calling the tool again. Example::

            def lookup(ticker: str) -> float:
                "Latest price of a stock."
                return prices[ticker]

            flock.agent("analyst").consumes(News).publishes(Note).with_tools([lookup])
        """
        from flock_es.models.tools import check_tools

        self.agent.tools = check_tools(self.agent.name, [*self.agent.tools, *tools])
        return self._changed()

    def _check_instances(self, method: str, items: Iterable[object], cls: type) -> None:
        for item in items:
            if not isinstance(item, cls):
                raise DefinitionError(
                    f"agent {self.agent.name!r}: {method}() takes {cls.__name__} "
                    f"instances, got {item!r}"
                )

    def with_utilities(self, *components: AgentComponent) -> AgentBuilder:
        """Add ``AgentComponent``s: lifecycle hooks around every run of this agent.

        They run by ``priority`` (lower first); see ``flock_es.components`` for
        the hooks and what is recorded. Example::

            flock.agent("triage").consumes(Ticket).publishes(Triage).with_utilities(Audit())
        """
        from flock_es.runtime.components import AgentComponent

        self._check_instances("with_utilities", components, AgentComponent)
        self.agent.utilities.extend(components)
        return self._changed()

    def with_engines(self, *engines: EngineComponent) -> AgentBuilder:
        """Evaluate with these ``EngineComponent``s instead of the built-in model path.

        Several engines chain (each one's outputs are the next one's inputs). Model
        calls an engine makes through ``ctx.llm`` are recorded and served on resume
        and replay. Example::

            flock.agent("pitch").consumes(Idea).publishes(Slogan).with_engines(PitchEngine())
        """
        from flock_es.runtime.components import EngineComponent

        self._check_instances("with_engines", engines, EngineComponent)
        if engines and self.agent.function is not None:
            raise DefinitionError(
                f"agent {self.agent.name!r}: an agent has either a function or engines, not both"
            )
        self.agent.engines.extend(engines)
        return self._changed()

    def with_mcps(self, servers: Any) -> AgentBuilder:
        """Let the model call the tools of these MCP servers (registered with ``add_mcp``).

        As in Flock: a list of names, or a dict of name to
        ``{"tool_whitelist": [...]}``, or a list mixing both. The model sees the
        tools as ``{server}__{tool}``; every call and result is recorded and
        served from the record on resume and replay. Example::

            flock.add_mcp("weather", StdioServerParameters(command="python",
                                                           args=["weather.py"]))
            flock.agent("planner").consumes(Trip).publishes(Plan).with_mcps(["weather"])
        """
        from flock_es.runtime.mcp import parse_with_mcps

        registry = self.agent.mcp
        registered = registry.configs if registry is not None else {}
        names, whitelists = parse_with_mcps(self.agent.name, servers, registered)
        self.agent.mcp_servers = names
        self.agent.mcp_whitelist = whitelists
        return self._changed()

    def prevent_self_trigger(self, enabled: bool = True) -> AgentBuilder:
        """On by default: an agent is not fed its own outputs."""
        self.agent.self_trigger = not enabled
        return self._changed()


class PublishBuilder(AgentBuilder):
    """What ``.publishes(...)`` returns: Flock's handle on the types just declared.

    ``.visibility(v)`` and ``.only_for(*agents)`` set who sees outputs of these
    types only, and return the agent's builder; any other builder method acts
    on the agent and returns its builder, as in Flock. Example::

        flock.agent("doctor").consumes(Symptom).publishes(Diagnosis).visibility(
            PrivateVisibility(agents={"patient"})
        ).publishes(Bill).with_function(treat)
    """

    _parent: AgentBuilder

    def __init__(self, parent: AgentBuilder, types: Iterable[type[BaseModel]]) -> None:
        root = parent._parent if isinstance(parent, PublishBuilder) else parent
        super().__init__(root.agent, root._on_change)
        self._parent = root
        self._types = tuple(types)

    def _changed(self) -> AgentBuilder:
        self._parent._changed()
        return self._parent

    def visibility(self, value: Visibility | dict[str, Any]) -> AgentBuilder:
        """Who sees this agent's outputs of the types just declared."""
        vis = visibility_dict(value)
        for t in self._types:
            self.agent.type_visibility[registry.type_name(t)] = vis
        return self._changed()

    def only_for(self, *agents: str) -> AgentBuilder:
        """Outputs of the types just declared go privately to ``agents``."""
        if not agents or not all(isinstance(a, str) and a for a in agents):
            raise DefinitionError(f"agent {self.agent.name!r}: .only_for() takes agent names")
        return self.visibility({"kind": "private", "agents": sorted(set(agents))})
