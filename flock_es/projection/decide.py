"""``decide``: which tasks a new artifact causes, as events.

Matching goes through a type index first, so the cost of a publish grows with
the number of subscriptions to that type, not with the number of agents.
Predicates are user code and may raise; that counts as no match and is
recorded as a ``predicate.failed`` event rather than swallowed.

Visibility is checked here, before anything is scheduled; the circuit breaker
(``max_agent_iterations``) turns a schedule past the limit into a recorded
``circuit.tripped``, and so does a chain of agent runs ``max_depth`` long: a
task's depth is the deepest of its inputs' (0 for a publish from outside), its
outputs' one more, so agents that feed each other in a loop stop there while a
fan-out of any size (depth 1) does not. AND/count gates and joins live in
``gates.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flock_es.domain import ids
from flock_es.domain.events import (
    ArtifactReleased,
    BatchBuffered,
    CircuitTripped,
    Event,
    EventKind,
    PredicateFailed,
    ScheduleReason,
    TaskScheduled,
    make_event,
    trusted_event,
)
from flock_es.domain.subscriptions import Subscription
from flock_es.domain.visibility import Identity, visible_to
from flock_es.projection.chain_depth import refused, task_depth, too_deep
from flock_es.projection.gates import gate_arrival
from flock_es.projection.state import ArtifactView, RunState

__all__ = [
    "DECISIONS",
    "SubscriptionIndex",
    "decide_artifact",
    "decide_batch_flush",
    "decide_release",
    "matching_subscriptions",
    "schedule",
]

# What ``decide`` may cause. They sit right after their artifact, in its transaction
# (replay matches them there; resume's unit boundaries rely on it).
DECISIONS = frozenset(
    {
        EventKind.TASK_SCHEDULED,
        EventKind.BATCH_BUFFERED,
        EventKind.PREDICATE_FAILED,
        EventKind.GATE_BUFFERED,
        EventKind.JOIN_EXPIRED,
        EventKind.CIRCUIT_TRIPPED,
    }
)


@dataclass(slots=True)
class SubscriptionIndex:
    """Subscriptions by consumed type name."""

    by_type: dict[str, list[Subscription]] = field(default_factory=dict)
    allow_self: frozenset[str] = frozenset()
    identities: dict[str, Identity] = field(default_factory=dict)
    max_iterations: int | None = None
    # Types whose decision reads the artifact's object (a ``where`` or a gate), by name.
    _needs_object: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        subscriptions: Iterable[Subscription],
        allow_self: Iterable[str] = (),
        identities: Iterable[Identity] = (),
        max_iterations: int | None = None,
    ) -> SubscriptionIndex:
        idx = cls(
            allow_self=frozenset(allow_self),
            identities={i.name: i for i in identities},
            max_iterations=max_iterations,
        )
        for sub in subscriptions:
            for t in dict.fromkeys(sub.types):  # a count gate lists a type twice; index it once
                idx.by_type.setdefault(t, []).append(sub)
        return idx

    def needs_object(self, type_name: str) -> bool:
        """Whether deciding an artifact of ``type_name`` calls user code on its object
        (a ``where`` predicate, a join key): else ``decide_artifact`` takes None, and
        the runtime need not build the object (from the log's payload, at scale)."""
        known = self._needs_object.get(type_name)
        if known is None:
            subs = self.by_type.get(type_name, ())
            known = self._needs_object[type_name] = any(s.where or s.gated for s in subs)
        return known

    def identity(self, agent: str) -> Identity:
        who = self.identities.get(agent)
        return who if who is not None else Identity(agent)

    def get(self, agent: str, sub_index: int) -> Subscription | None:
        for subs in self.by_type.values():
            for s in subs:
                if s.agent == agent and s.index == sub_index:
                    return s
        return None


# Each reason's text (an enum's .value is a property call; this runs once per task).
_REASON_TEXT = {r: r.value for r in ScheduleReason}
# Enum members bound to module globals for the hot paths: in Python 3.11 ``Kind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_SCHEDULED_KIND, _MATCH = EventKind.TASK_SCHEDULED, ScheduleReason.MATCH
_BUFFERED_KIND = EventKind.BATCH_BUFFERED


def schedule(
    state: RunState,
    agent: str,
    sub_index: int,
    inputs: list[str],
    reason: ScheduleReason,
    now: float,
    depth: int = 0,
) -> Event:
    # ``state.ids_run`` without its property's call (once per task).
    tid = ids.task_id(state.id_root or state.run_id, agent, sub_index, inputs)
    body: TaskScheduled = {
        "task_id": tid,
        "agent": agent,
        "sub_index": sub_index,
        "inputs": inputs,
        "reason": _REASON_TEXT[reason],
    }
    if depth:  # absent at 0, as in runs written before ``max_depth``
        body["depth"] = depth
    return trusted_event(state.run_id, _SCHEDULED_KIND, body, now)


def decide_artifact(
    state: RunState, index: SubscriptionIndex, art: ArtifactView, obj: Any, now: float
) -> list[Event]:
    """The events that publishing ``art`` (already folded into ``state``) causes.

    ``obj`` is the artifact's object; None will do where ``index.needs_object`` is
    False for its type (nothing then reads it).

    An ``AfterVisibility`` artifact causes nothing until it is released
    (``decide_release``); every agent that may not see ``art`` is skipped.
    """
    out: list[Event] = []
    subs = index.by_type.get(art.type)
    if not subs:
        return out  # no subscriber of the type: the common case of a final output
    vis = art.visibility
    public = vis.get("kind", "public") == "public"
    if not public and vis.get("kind") == "after" and not art.released:
        return out
    planned: dict[str, int] = {}
    # Agents that took ``art`` through one of their subscriptions (once_per_agent only).
    taken: set[str] | None = set() if state.once_per_agent else None

    def fire(sub: Subscription, inputs: list[str], reason: ScheduleReason) -> list[Event]:
        return _fire(state, index, sub, inputs, reason, now, planned)

    def deliver(sub: Subscription, unit: list[str], reason: ScheduleReason) -> list[Event]:
        return _to_batch(state, sub, unit, now, fire)

    produced_by = art.produced_by
    vetoed = state.vetoed
    # The same for every subscriber: a task on this artifact alone is as deep as it is;
    # past ``max_depth`` each match is refused at once (not buffered, to be refused
    # with the batch or group it would have joined).
    depth = art.depth
    deep = state.max_depth is not None and depth >= state.max_depth
    unlimited = _limit(state, index) is None
    for sub in subs:
        # Cheapest checks first: this loop runs once per subscriber of the type.
        if sub.agent == produced_by and sub.agent not in index.allow_self:
            continue
        if (sub.from_agents or sub.tags) and not sub.routes(produced_by, art.tags):
            continue
        if not public and not visible_to(vis, index.identity(sub.agent), art.released):
            continue
        if vetoed and (art.id, sub.agent, sub.index) in vetoed:
            continue  # an orchestrator component refused it (recorded: schedule.vetoed)
        where = sub.where
        gated = sub.gated
        try:
            if not where:
                ok = True
            elif len(where) == 1:
                ok = bool(where[0](obj))
            else:
                ok = all(pred(obj) for pred in where)
            if ok and taken is not None and sub.agent in taken:
                ok = False  # an earlier subscription of this agent took it (flock-core's rule)
            caused = (
                gate_arrival(state, sub, art, obj, now, deliver)
                if ok and gated and not deep
                else []
            )
        except Exception as exc:
            err = f"{type(exc).__name__}: {exc}"
            body = PredicateFailed(
                agent=sub.agent, sub_index=sub.index, artifact_id=art.id, error=err
            )
            out.append(make_event(state.run_id, EventKind.PREDICATE_FAILED, body, now))
            continue
        if not ok:
            continue
        if taken is not None:
            taken.add(sub.agent)
        if deep:
            out.append(refused(state, sub.agent, sub.index, [art.id], depth, now))
        elif gated:
            out.extend(caused)
        elif sub.batch is None and unlimited:
            out.append(schedule(state, sub.agent, sub.index, [art.id], _MATCH, now, depth))
        else:
            out.extend(_to_batch(state, sub, [art.id], now, fire))
    return out


def matching_subscriptions(
    index: SubscriptionIndex,
    type_name: str,
    produced_by: str,
    tags: list[str],
    visibility: dict[str, Any],
    obj: Any,
) -> list[Subscription]:
    """The subscriptions an artifact would match (routing, visibility, ``where``),
    before gates, batches and the circuit breaker: what orchestrator components
    are asked about. A predicate that raises is no match (``decide`` records it).
    An ``AfterVisibility`` artifact is judged as it will be once released.
    """
    out: list[Subscription] = []
    kind = visibility.get("kind", "public")
    for sub in index.by_type.get(type_name, ()):
        if sub.agent == produced_by and sub.agent not in index.allow_self:
            continue
        if (sub.from_agents or sub.tags) and not sub.routes(produced_by, tags):
            continue
        if kind != "public" and not visible_to(visibility, index.identity(sub.agent), True):
            continue
        try:
            if all(pred(obj) for pred in sub.where):
                out.append(sub)
        except Exception:
            continue
    return out


def _fire(
    state: RunState,
    index: SubscriptionIndex,
    sub: Subscription,
    inputs: list[str],
    reason: ScheduleReason,
    now: float,
    planned: dict[str, int],
) -> list[Event]:
    """Schedule ``inputs`` for ``sub``, unless the agent's circuit breaker is open or
    the chain of runs ``inputs`` come from is ``max_depth`` long."""
    depth = task_depth(state, inputs)
    tripped = too_deep(state, sub.agent, sub.index, inputs, depth, now) or _breaker(
        state, _limit(state, index), sub.agent, sub.index, inputs, planned, now
    )
    if tripped is not None:
        return [tripped]
    return [schedule(state, sub.agent, sub.index, inputs, reason, now, depth)]


def _breaker(
    state: RunState,
    limit: int | None,
    agent: str,
    sub_index: int,
    inputs: list[str],
    planned: dict[str, int],
    now: float,
) -> Event | None:
    """The circuit breaker, the one place it is decided: ``circuit.tripped`` if ``agent``
    has been scheduled ``limit`` times (counting ``planned`` schedules of this
    decision), else None, counting this schedule in ``planned``."""
    if limit is None:
        return None
    view = state.agents.get(agent)
    done = (view.scheduled - view.breaker_base if view is not None else 0) + planned.get(agent, 0)
    if done >= limit:
        body = CircuitTripped(agent=agent, sub_index=sub_index, inputs=inputs, limit=limit)
        return make_event(state.run_id, EventKind.CIRCUIT_TRIPPED, body, now)
    planned[agent] = planned.get(agent, 0) + 1
    return None


def _limit(state: RunState, index: SubscriptionIndex) -> int | None:
    """The program's limit, else the one recorded in ``run.started`` (replay passes none)."""
    return index.max_iterations if index.max_iterations is not None else state.max_agent_iterations


def _to_batch(
    state: RunState,
    sub: Subscription,
    unit: list[str],
    now: float,
    fire: Callable[[Subscription, list[str], ScheduleReason], list[Event]],
) -> list[Event]:
    """Hand one unit (an artifact, or a joined set) to ``sub``: fire it, or add it to the batch."""
    if sub.batch is None:
        return fire(sub, unit, ScheduleReason.MATCH if not sub.gated else _gate_reason(sub))
    buf = state.batches.get((sub.agent, sub.index))
    units = len(buf.groups) if buf is not None else 0
    if sub.batch.size is not None and units + 1 >= sub.batch.size:
        members = buf.members if buf is not None else []
        return fire(sub, [*members, *unit], ScheduleReason.BATCH_SIZE)
    timeout = sub.batch.timeout_seconds
    deadline = now + timeout if (buf is None and timeout is not None) else None
    body = BatchBuffered(
        agent=sub.agent,
        sub_index=sub.index,
        artifact_id=unit[0],
        deadline=deadline,
        group=unit if sub.gated else None,
    )
    # Unchecked, as ``schedule``'s task.scheduled and the gates' gate.buffered: a batch
    # buffers an artifact per arrival, and checking the body (a pydantic validation,
    # ten times the event's making) was on the path from each output to the batch's
    # agent (issue 14 (a)). tests/test_gates.py validates the bodies real runs write.
    return [trusted_event(state.run_id, _BUFFERED_KIND, body, now)]


def _gate_reason(sub: Subscription) -> ScheduleReason:
    return ScheduleReason.JOIN if sub.join is not None else ScheduleReason.GATE


def decide_release(
    state: RunState, index: SubscriptionIndex, aid: str, obj: Any, now: float
) -> list[Event]:
    """An AfterVisibility artifact is due: release it, then decide it like a new publish.

    Mutates nothing; the caller applies ``artifact.released`` before the decisions
    (both are returned, in order), exactly as a reader of the log will.
    """
    art = state.artifacts.get(aid)
    if art is None or art.released or aid not in state.unreleased:
        return []
    released = make_event(
        state.run_id, EventKind.ARTIFACT_RELEASED, ArtifactReleased(artifact_id=aid), now
    )
    view = dataclasses.replace(art, released=True)
    return [released, *decide_artifact(state, index, view, obj, now)]


def decide_batch_flush(
    state: RunState, agent: str, sub_index: int, reason: ScheduleReason, now: float
) -> list[Event]:
    """Flush a partial batch (its timeout expired): one task with what it holds."""
    buf = state.batches.get((agent, sub_index))
    if buf is None or not buf.members:
        return []
    members = list(buf.members)
    limit = state.max_agent_iterations
    depth = task_depth(state, members)
    tripped = too_deep(state, agent, sub_index, members, depth, now) or _breaker(
        state, limit, agent, sub_index, members, {}, now
    )
    if tripped is not None:
        return [tripped]
    return [schedule(state, agent, sub_index, members, reason, now, depth)]
