"""Agent components and engines: Flock's lifecycle hooks around one agent run.

``AgentComponent`` and ``EngineComponent`` have Flock's (flock-core 0.5.7)
names, fields (``name``, ``config``, ``priority``) and hook signatures; every
hook is ``async`` and receives our ``Agent`` and ``AgentContext``, and
``flock_es.Artifact``/``EvalInputs``/``EvalResult`` where Flock passes its own.
Attach them with ``.with_utilities(...)`` and ``.with_engines(...)``.

For one task the runtime calls, in order (``runtime/agent_hooks.py``):
``on_initialize`` (utilities by priority, then engines), ``on_pre_consume``
(may drop or change input artifacts), ``on_pre_evaluate`` (may rewrite the
``EvalInputs``), the engine (``evaluate``, or ``evaluate_batch`` for a
batch; without an engine: the agent's function or the built-in model path),
``on_post_evaluate`` (may change the result), then the outputs are recorded
and ``on_post_publish`` runs once per output artifact; on a failure
``on_error``; and always ``on_terminate`` last.

Determinism: when pre-consume/pre-evaluate hooks change what the agent
evaluates, the evaluated inputs are recorded (``inputs.rewritten``); replay
re-runs the hooks and compares. The outputs are recorded as artifacts as
always. Hooks are your code and re-run on resume and replay, as function
agents do: the ones that shape outputs (initialize, pre-consume,
pre-evaluate, evaluate, post-evaluate, terminate) run again on replay;
``on_post_publish`` and ``on_error`` run only live, after the commit.

Example::

    class Audit(AgentComponent):
        seen: list[str] = []

        async def on_pre_evaluate(self, agent, ctx, inputs):
            self.seen.append(ctx.task_id)
            return inputs

    flock.agent("triage").consumes(Ticket).publishes(Triage).with_utilities(Audit())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

if TYPE_CHECKING:
    from flock_es.runtime.agent import Agent
    from flock_es.runtime.context import AgentContext
    from flock_es.runtime.eval_types import EvalInputs, EvalResult
    from flock_es.runtime.store import Artifact

__all__ = ["AgentComponent", "AgentComponentConfig", "EngineComponent"]


class AgentComponentConfig(BaseModel):
    """A component's configuration (Flock's: ``enabled`` and ``model``).

    Example::

        TempConfig = AgentComponentConfig.with_fields(temperature=(float, 0.7))
    """

    enabled: bool = True
    model: str | None = None

    @classmethod
    def with_fields(cls, **field_definitions: Any) -> type[AgentComponentConfig]:
        """A config class with extra fields (as ``pydantic.create_model`` takes them)."""
        made: type[AgentComponentConfig] = create_model(
            f"Dynamic{cls.__name__}", __base__=cls, **field_definitions
        )
        return made


class AgentComponent(BaseModel):
    """Hooks around each run of an agent; override the ones you need (all ``async``).

    ``priority``: lower runs earlier (equal priorities keep the order of
    ``with_utilities``). A component with ``config.enabled = False`` is skipped.

    Example::

        class Redact(AgentComponent):
            async def on_pre_consume(self, agent, ctx, inputs):
                return [replace(a, payload={**a.payload, "email": "-"}) for a in inputs]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str | None = None
    config: AgentComponentConfig = Field(default_factory=AgentComponentConfig)
    priority: int = 0

    async def on_initialize(self, agent: Agent, ctx: AgentContext) -> None:
        """Before anything else of this run of the agent."""
        return None

    async def on_pre_consume(
        self, agent: Agent, ctx: AgentContext, inputs: list[Artifact]
    ) -> list[Artifact]:
        """The input artifacts the agent consumes (drop, reorder or replace them)."""
        return inputs

    async def on_pre_evaluate(
        self, agent: Agent, ctx: AgentContext, inputs: EvalInputs
    ) -> EvalInputs:
        """What the engine evaluates (rewrites are recorded: ``inputs.rewritten``)."""
        return inputs

    async def on_post_evaluate(
        self, agent: Agent, ctx: AgentContext, inputs: EvalInputs, result: EvalResult
    ) -> EvalResult:
        """The result before it is checked against ``.publishes()`` and recorded."""
        return result

    async def on_post_publish(self, agent: Agent, ctx: AgentContext, artifact: Artifact) -> None:
        """After the outputs are durable, once per output artifact (live runs only)."""
        return None

    async def on_error(self, agent: Agent, ctx: AgentContext, error: Exception) -> None:
        """After the run failed and its ``task.failed`` is durable (live runs only)."""
        return None

    async def on_terminate(self, agent: Agent, ctx: AgentContext) -> None:
        """Last, whether the run succeeded or failed."""
        return None

    @property
    def display_name(self) -> str:
        return self.name or type(self).__name__


class EngineComponent(AgentComponent):
    """Evaluation in place of the built-in model path: ``.with_engines(MyEngine())``.

    ``evaluate`` returns an ``EvalResult`` (or one pydantic object). Model calls
    go through ``ctx.llm`` (``runtime/engine_llm.py``), so they are recorded
    and, on resume and replay, served from the record instead of paid again.
    Several engines form a chain: each one's outputs are the next one's inputs.

    Example::

        class Summarise(EngineComponent):
            async def evaluate(self, agent, ctx, inputs):
                story = inputs.first_as(Story)
                summary = await ctx.llm.structured(Summary, f"Summarise: {story.text}")
                return EvalResult.from_object(summary, agent=agent)
    """

    async def evaluate(self, agent: Agent, ctx: AgentContext, inputs: EvalInputs) -> Any:
        """Override: the outputs for ``inputs`` (an ``EvalResult`` or one object)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement evaluate()")

    async def evaluate_batch(self, agent: Agent, ctx: AgentContext, inputs: EvalInputs) -> Any:
        """Override for ``BatchSpec`` subscriptions: ``inputs`` holds the whole batch."""
        raise NotImplementedError(
            f"{type(self).__name__} does not support batch processing: implement "
            f"evaluate_batch(), or remove the BatchSpec from agent {agent.name!r}"
        )
