"""Calls the orchestrator components of a run at the right moments, and records
what they decide (``schedule.vetoed``) so that decide and replay follow it.

Example::

    hooks = OrchestratorHooks(flock, flock.components, flock.agents)
    art = await hooks.published(artifact)            # None: blocked
    vetoes = await hooks.vetoes(index, [(art, vis, obj, art is None)], now)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from flock_es.domain import ids, registry
from flock_es.domain.events import (
    Event,
    EventKind,
    ScheduleVetoed,
    TaskScheduled,
    body_as,
    trusted_event,
)
from flock_es.projection.decide import SubscriptionIndex, matching_subscriptions
from flock_es.projection.state import RunState
from flock_es.runtime.agent import Agent
from flock_es.runtime.eval_types import artifact_for
from flock_es.runtime.kernel import Kernel
from flock_es.runtime.orchestrator_components import OrchestratorComponent, ScheduleDecision
from flock_es.runtime.store import Artifact, artifact_of

__all__ = ["BLOCKED", "Candidate", "OrchestratorHooks"]

BLOCKED = "BLOCKED"
# An artifact about to be recorded: (artifact, visibility, object, blocked).
Candidate = tuple[Artifact, dict[str, Any], BaseModel, bool]
Spawn = Callable[[Coroutine[Any, Any, None], str], Any]


def _overrides(component: OrchestratorComponent, hook: str) -> bool:
    return getattr(type(component), hook) is not getattr(OrchestratorComponent, hook)


class OrchestratorHooks:
    """The components of one program, sorted by priority (stable: equal keep add order)."""

    def __init__(
        self,
        orchestrator: Any,
        components: Iterable[OrchestratorComponent],
        agents: Mapping[str, Agent],
    ) -> None:
        self.orchestrator = orchestrator
        self.components = sorted(components, key=lambda c: c.priority)
        self.agents = agents
        # Notification hooks that raised: (hook, repr); they never stop the run.
        self.failures: list[tuple[str, str]] = []
        comps = self.components
        self._publish = [c for c in comps if _overrides(c, "on_artifact_published")]
        self._before = [c for c in comps if _overrides(c, "on_before_schedule")]
        self._scheduled = [c for c in comps if _overrides(c, "on_agent_scheduled")]

    @property
    def transforms(self) -> bool:
        """Whether any component may change or block artifacts."""
        return bool(self._publish)

    async def initialize(self) -> None:
        for c in self.components:
            await c.on_initialize(self.orchestrator)

    async def idle(self) -> None:
        for c in self.components:
            await c.on_orchestrator_idle(self.orchestrator)

    async def shutdown(self) -> None:
        for c in self.components:
            await c.on_shutdown(self.orchestrator)

    async def published(self, artifact: Artifact) -> Artifact | None:
        """``on_artifact_published`` of every component, chained; None: blocked."""
        current: Artifact | None = artifact
        for c in self._publish:
            if current is None:
                break
            current = await c.on_artifact_published(self.orchestrator, current)
        return current

    async def outputs(
        self, outputs: list[BaseModel], artifacts: list[Artifact]
    ) -> tuple[list[BaseModel], set[int]]:
        """Agent outputs after ``on_artifact_published``; and the positions blocked."""
        if not self._publish:
            return outputs, set()
        result: list[BaseModel] = []
        blocked: set[int] = set()
        for pos, (obj, art) in enumerate(zip(outputs, artifacts, strict=True)):
            seen = await self.published(art)
            if seen is None:
                blocked.add(pos)
                result.append(obj)
            elif seen.payload != art.payload or seen.type != art.type:
                result.append(registry.to_object(seen.type, seen.payload))
            else:
                result.append(obj)
        return result, blocked

    async def vetoes(
        self, run_id: str, index: SubscriptionIndex, items: list[Candidate], now: float
    ) -> list[Event]:
        """``schedule.vetoed`` for every match a component refuses (or a blocked artifact's)."""
        if not self._before and not any(blocked for *_, blocked in items):
            return []
        out: list[Event] = []
        for art, vis, obj, blocked in items:
            subs = matching_subscriptions(
                index, art.type, art.produced_by, list(art.tags), vis, obj
            )
            for sub in subs:
                who, decision = await self._decide(art, sub, blocked)
                if decision is None:
                    continue
                body = ScheduleVetoed(
                    artifact_id=art.id,
                    agent=sub.agent,
                    sub_index=sub.index,
                    component=who,
                    decision=decision,
                )
                out.append(trusted_event(run_id, EventKind.SCHEDULE_VETOED, body, now))
        return out

    async def _decide(self, art: Artifact, sub: Any, blocked: bool) -> tuple[str, str | None]:
        if blocked:
            return "on_artifact_published", BLOCKED
        agent = self.agents.get(sub.agent)
        if agent is None:
            return "", None
        for c in self._before:
            decision = await c.on_before_schedule(self.orchestrator, art, agent, sub)
            if decision != ScheduleDecision.CONTINUE:
                return c.display_name, str(ScheduleDecision(decision).value)
        return "", None

    async def external(
        self,
        kernel: Kernel,
        objs: list[BaseModel],
        tags: list[str],
        correlation_id: str | None,
        visibility: dict[str, Any] | None,
        now: float,
    ) -> tuple[list[Event], list[Event]]:
        """Artifacts published from outside, after the hooks: their events and the vetoes."""
        evs: list[Event] = []
        items: list[Candidate] = []
        vis = visibility or {"kind": "public"}
        for obj in objs:
            aid = ids.external_artifact_id()
            corr = correlation_id or aid
            art = dataclasses.replace(
                artifact_for(obj, "external"), id=aid, correlation_id=corr, tags=tuple(tags)
            )
            seen = await self.published(art) if self._publish else art
            if seen is not None and (seen.payload != art.payload or seen.type != art.type):
                obj = registry.to_object(seen.type, seen.payload)
                art = dataclasses.replace(art, type=seen.type, payload=obj.model_dump(mode="json"))
            evs.append(
                kernel.artifact_event(obj, aid, "external", None, corr, tags, visibility, now)
            )
            items.append((art, vis, obj, seen is None))
        return evs, await self.vetoes(kernel.run_id, kernel.index, items, now)

    def scheduled(self, state: RunState, events: list[Event], spawn: Spawn) -> None:
        """After a commit: ``on_agent_scheduled`` for each task it scheduled."""
        if not self._scheduled:
            return
        for e in events:
            if e.kind is not EventKind.TASK_SCHEDULED:
                continue
            scheduled = body_as(e, TaskScheduled)
            task = state.tasks.get(scheduled["task_id"])
            agent = self.agents.get(scheduled["agent"])
            if task is None or agent is None:
                continue
            arts = [artifact_of(state.artifacts[i]) for i in task.inputs if i in state.artifacts]
            spawn(self._notify(agent, arts, dataclasses.replace(task)), "flock-es:scheduled")

    async def _notify(self, agent: Agent, arts: list[Artifact], task: Any) -> None:
        for c in self._scheduled:
            try:
                await c.on_agent_scheduled(self.orchestrator, agent, arts, task)
            except Exception as exc:  # notification only: never stops the run (as in Flock)
                self.failures.append(("on_agent_scheduled", repr(exc)))
