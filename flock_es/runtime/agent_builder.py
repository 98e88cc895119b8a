"""``AgentBuilder``: the fluent declaration of an agent (spelled as in Flock), and
``PublishBuilder``, the handle ``.publishes(...)`` returns.

Apart from the ``Agent`` it fills in (``runtime/agent.py``) because only the
program's declaration (``Flock.agent``) needs it: the engine, executor and
kernel read agents and never build them. Every method checks its arguments and tells the Flock (``on_change``),
which refuses changes once the run started. Example::

    builder = flock.agent("editor")   # an AgentBuilder
    builder.consumes(NewsAnalysis).publishes(NewsDigest).only_for("publisher")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flock_es.domain import registry
from flock_es.domain.subscriptions import BatchSpec, JoinSpec, Predicate, Subscription
from flock_es.domain.visibility import Visibility
from flock_es.domain.visibility import to_dict as visibility_dict
from flock_es.errors import DefinitionError
from flock_es.runtime.agent import Agent, AgentFunction, ErrorHandler, positional_count

if TYPE_CHECKING:
    from flock_es.runtime.components import AgentComponent, EngineComponent

__all__ = ["AgentBuilder", "PublishBuilder"]


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
        self.agent.fn_wants_ctx = positional_count(fn) >= 2
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
