"""Orchestrator components: Flock's hooks around publish, schedule and idle.

``OrchestratorComponent`` has Flock's (flock-core 0.5.7) names and
signatures; add one with ``flock.add_component(...)``. What we call, and
when:

* ``on_initialize(orchestrator)``: once, when the run starts.
* ``on_artifact_published(orchestrator, artifact)``: before an artifact is
  recorded (published from outside or produced by an agent). Return it, a
  changed copy (``dataclasses.replace(artifact, payload=...)``: the changed
  payload is what is recorded), or None to block it: it is still recorded
  (as in Flock, where it is already stored) but schedules nothing.
* ``on_before_schedule(orchestrator, artifact, agent, subscription)``: for
  every subscription the artifact matches; ``ScheduleDecision.SKIP`` (or
  ``DEFER``, which Flock also treats as a skip) refuses that match.
* ``on_agent_scheduled(orchestrator, agent, artifacts, task)``: after a task's
  ``task.scheduled`` is durable (notification; ``task`` is its ``TaskView``).
* ``on_orchestrator_idle(orchestrator)``: when ``run_until_idle`` finds no work.
* ``on_shutdown(orchestrator)``: when the run closes.

Flock's ``on_collect_artifacts`` and ``on_before_agent_schedule`` are not
offered: gates, joins and batches are decided by the pure ``decide`` from
the log, and a collection that user code decides could not be replayed.

Determinism: a refused match (a SKIP, or a blocked artifact) is recorded as
``schedule.vetoed`` in the artifact's own transaction; ``decide`` and replay
follow the record and do not ask the component again. A changed payload is
recorded as the artifact itself. Hooks re-run on resume for work that is
re-done, and ``on_artifact_published`` re-runs on replay for agent outputs
(outputs are compared after it); the other hooks do not run on replay.

Example::

    class NoSpam(OrchestratorComponent):
        async def on_before_schedule(self, orchestrator, artifact, agent, subscription):
            if "spam" in artifact.payload.get("text", ""):
                return ScheduleDecision.SKIP
            return ScheduleDecision.CONTINUE

    flock.add_component(NoSpam())
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from flock_es.errors import DefinitionError

if TYPE_CHECKING:
    from flock_es.domain.subscriptions import Subscription
    from flock_es.projection.state import TaskView
    from flock_es.runtime.agent import Agent
    from flock_es.runtime.store import Artifact

__all__ = [
    "OrchestratorComponent",
    "OrchestratorComponentConfig",
    "ScheduleDecision",
    "checked_component",
]


class ScheduleDecision(StrEnum):
    """What ``on_before_schedule`` answers (Flock's values)."""

    CONTINUE = "CONTINUE"
    SKIP = "SKIP"
    DEFER = "DEFER"


class OrchestratorComponentConfig(BaseModel):
    """Configuration of an orchestrator component; extend it for your own."""


class OrchestratorComponent(BaseModel):
    """Hooks around the whole blackboard; override the ones you need (all ``async``).

    ``priority``: lower runs earlier. Example: see the module docstring.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str | None = None
    config: OrchestratorComponentConfig = Field(default_factory=OrchestratorComponentConfig)
    priority: int = 0

    async def on_initialize(self, orchestrator: Any) -> None:
        """Once, when the run starts."""

    async def on_artifact_published(self, orchestrator: Any, artifact: Artifact) -> Artifact | None:
        """The artifact to record (changed or not), or None to block its scheduling."""
        return artifact

    async def on_before_schedule(
        self, orchestrator: Any, artifact: Artifact, agent: Agent, subscription: Subscription
    ) -> ScheduleDecision:
        """CONTINUE, or SKIP/DEFER to refuse this match (recorded: ``schedule.vetoed``)."""
        return ScheduleDecision.CONTINUE

    async def on_agent_scheduled(
        self, orchestrator: Any, agent: Agent, artifacts: list[Artifact], task: TaskView
    ) -> None:
        """After ``task`` is durably scheduled (errors here are ignored, as in Flock)."""

    async def on_orchestrator_idle(self, orchestrator: Any) -> None:
        """When ``run_until_idle`` finds nothing left to do."""

    async def on_shutdown(self, orchestrator: Any) -> None:
        """When the run closes."""

    @property
    def display_name(self) -> str:
        return self.name or type(self).__name__


def checked_component(component: object) -> OrchestratorComponent:
    """``component``, if it is an ``OrchestratorComponent`` (else a ``DefinitionError``)."""
    if not isinstance(component, OrchestratorComponent):
        raise DefinitionError(f"add_component() takes an OrchestratorComponent, got {component!r}")
    return component
