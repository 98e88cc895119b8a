"""What components and engines hand each other: ``EvalInputs`` and ``EvalResult``.

Spelled as in Flock (``flock.runtime``), over our ``Artifact``. Flock's are
pydantic models holding its ``Artifact``; ours are dataclasses holding
``flock_es.Artifact`` (frozen: a hook that changes an artifact returns a new
one, e.g. ``dataclasses.replace(a, payload={...})``). An artifact an engine
creates has no id yet (``""``): the runtime gives every output its
deterministic id when it records it.

Example::

    class Upper(EngineComponent):
        async def evaluate(self, agent, ctx, inputs: EvalInputs) -> EvalResult:
            note = inputs.first_as(Note)
            return EvalResult.from_object(Loud(text=note.text.upper()), agent=agent)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from flock_es.domain import registry
from flock_es.runtime.store import Artifact

__all__ = ["EvalInputs", "EvalResult", "artifact_for"]

M = TypeVar("M", bound=BaseModel)


def artifact_for(obj: BaseModel, produced_by: str) -> Artifact:
    """A not-yet-recorded artifact holding ``obj`` (its type is registered on the way)."""
    registry.register(type(obj))
    return Artifact(
        id="",
        type=registry.type_name(type(obj)),
        payload=obj.model_dump(mode="json"),
        produced_by=produced_by,
        correlation_id=None,
        tags=(),
        created_at=0.0,
    )


def _agent_name(agent: Any) -> str:
    return str(getattr(agent, "name", agent))


@dataclass(slots=True)
class EvalInputs:
    """The artifacts an agent evaluates, and a free ``state`` dict for the hooks.

    Example::

        inputs.first_as(Ticket)        # the first artifact as a Ticket, or None
        inputs.all_as(Ticket)          # every artifact as a Ticket (a batch)
    """

    artifacts: list[Artifact] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def first_as(self, model_cls: type[M]) -> M | None:
        """The first artifact's payload as ``model_cls``, or None if there is none."""
        if not self.artifacts:
            return None
        return model_cls.model_validate(self.artifacts[0].payload)

    def all_as(self, model_cls: type[M]) -> list[M]:
        """Every artifact's payload as ``model_cls``."""
        return [model_cls.model_validate(a.payload) for a in self.artifacts]


@dataclass(slots=True)
class EvalResult:
    """What an engine answers: the output artifacts (plus state, metrics, logs).

    Example::

        return EvalResult.from_objects(Movie(title="X"), Tagline(line="Y"), agent=agent)
    """

    artifacts: list[Artifact] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_object(
        cls,
        obj: BaseModel,
        *,
        agent: Any,
        state: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        errors: list[str] | None = None,
    ) -> EvalResult:
        """A result with one output, ``obj``."""
        return cls.from_objects(obj, agent=agent, state=state, metrics=metrics, errors=errors)

    @classmethod
    def from_objects(
        cls,
        *objs: BaseModel,
        agent: Any,
        state: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        errors: list[str] | None = None,
    ) -> EvalResult:
        """A result with these outputs, in this order."""
        name = _agent_name(agent)
        return cls(
            artifacts=[artifact_for(o, name) for o in objs],
            state=dict(state or {}),
            metrics=dict(metrics or {}),
            errors=list(errors or []),
        )

    @classmethod
    def empty(
        cls,
        state: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        errors: list[str] | None = None,
    ) -> EvalResult:
        """A result with no output."""
        return cls(state=dict(state or {}), metrics=dict(metrics or {}), errors=list(errors or []))

    @classmethod
    def with_state(
        cls,
        state: dict[str, Any],
        *,
        metrics: dict[str, float] | None = None,
        errors: list[str] | None = None,
    ) -> EvalResult:
        """A result with no output, only state."""
        return cls.empty(state=state, metrics=metrics, errors=errors)

    def objects(self) -> list[BaseModel]:
        """The outputs as instances of their registered types."""
        return [registry.to_object(a.type, a.payload) for a in self.artifacts]
