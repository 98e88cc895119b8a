"""``decide``: which tasks a new artifact causes, as events.

Matching goes through a type index first, so the cost of a publish grows with
the number of subscriptions to that type, not with the number of agents.
Predicates are user code and may raise; that counts as no match and is
recorded as a ``predicate.failed`` event rather than swallowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flock_es.domain import ids
from flock_es.domain.events import (
    BatchBuffered,
    Event,
    EventKind,
    PredicateFailed,
    ScheduleReason,
    make_event,
    trusted_event,
)
from flock_es.domain.subscriptions import Subscription
from flock_es.projection.state import ArtifactView, RunState


@dataclass(slots=True)
class SubscriptionIndex:
    """Subscriptions by consumed type name."""

    by_type: dict[str, list[Subscription]] = field(default_factory=dict)
    allow_self: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, subscriptions: Iterable[Subscription], allow_self: Iterable[str] = ()
    ) -> SubscriptionIndex:
        idx = cls(allow_self=frozenset(allow_self))
        for sub in subscriptions:
            for t in sub.types:
                idx.by_type.setdefault(t, []).append(sub)
        return idx

    def get(self, agent: str, sub_index: int) -> Subscription | None:
        for subs in self.by_type.values():
            for s in subs:
                if s.agent == agent and s.index == sub_index:
                    return s
        return None


def schedule(
    state: RunState, agent: str, sub_index: int, inputs: list[str], reason: ScheduleReason, now: float
) -> Event:
    tid = ids.task_id(state.run_id, agent, sub_index, inputs)
    body = {
        "task_id": tid,
        "agent": agent,
        "sub_index": sub_index,
        "inputs": inputs,
        "reason": reason.value,
    }
    return trusted_event(state.run_id, EventKind.TASK_SCHEDULED, body, now)


def decide_artifact(
    state: RunState, index: SubscriptionIndex, art: ArtifactView, obj: Any, now: float
) -> list[Event]:
    """The events that publishing ``art`` (already folded into ``state``) causes."""
    out: list[Event] = []
    for sub in index.by_type.get(art.type, ()):
        if sub.agent == art.produced_by and sub.agent not in index.allow_self:
            continue
        if not sub.routes(art.produced_by, art.tags):
            continue
        try:
            ok = all(pred(obj) for pred in sub.where)
        except Exception as exc:
            err = f"{type(exc).__name__}: {exc}"
            body = PredicateFailed(
                agent=sub.agent, sub_index=sub.index, artifact_id=art.id, error=err
            )
            out.append(make_event(state.run_id, body, now))
            continue
        if not ok:
            continue
        out.append(_route(state, sub, art.id, now))
    return out


def _route(state: RunState, sub: Subscription, artifact_id: str, now: float) -> Event:
    if sub.batch is None:
        return schedule(state, sub.agent, sub.index, [artifact_id], ScheduleReason.MATCH, now)
    buf = state.batches.get((sub.agent, sub.index))
    members = buf.members if buf is not None else []
    if sub.batch.size is not None and len(members) + 1 >= sub.batch.size:
        return schedule(
            state, sub.agent, sub.index, [*members, artifact_id], ScheduleReason.BATCH_SIZE, now
        )
    timeout = sub.batch.timeout_seconds
    deadline = now + timeout if (buf is None and timeout is not None) else None
    body = BatchBuffered(
        agent=sub.agent, sub_index=sub.index, artifact_id=artifact_id, deadline=deadline
    )
    return make_event(state.run_id, body, now)


def decide_batch_flush(
    state: RunState, agent: str, sub_index: int, reason: ScheduleReason, now: float
) -> list[Event]:
    """Flush a partial batch (its timeout expired): one task with what it holds."""
    buf = state.batches.get((agent, sub_index))
    if buf is None or not buf.members:
        return []
    return [schedule(state, agent, sub_index, list(buf.members), reason, now)]
