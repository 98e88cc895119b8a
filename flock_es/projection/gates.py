"""AND gates, count gates and joins: pure decisions over the gate state in ``RunState``.

A gated subscription (``.consumes(A, B)``, ``.consumes(A, A, B)``, or any
``join=``) collects artifacts until one firing's worth is present: every
arrival is a ``gate.buffered`` event, and the arrival that completes a set is
followed by the ``task.scheduled`` (or ``batch.buffered``) that consumes it.
Members are taken first-come first-served per type; the surplus stays in the
gate for the next firing, it is never dropped. Because every step is an event,
a run resumed in the middle of a join finds its groups exactly as they were.

One arrival can complete at most one set (the gate was incomplete before it),
so a firing never has to look further than the arriving artifact's group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flock_es.domain.events import (
    Event,
    EventKind,
    GateBuffered,
    JoinExpired,
    ScheduleReason,
    make_event,
    trusted_event,
)
from flock_es.domain.subscriptions import JoinSpec, Subscription
from flock_es.projection.state import ArtifactView, GroupView, RunState

__all__ = ["Fire", "decide_join_expiry", "gate_arrival"]

Fire = Callable[[Subscription, list[str], ScheduleReason], list[Event]]


def gate_arrival(
    state: RunState, sub: Subscription, art: ArtifactView, obj: Any, now: float, fire: Fire
) -> list[Event]:
    """The events ``art`` causes at ``sub``'s gate. ``join.by`` may raise (the caller records it)."""
    join = sub.join
    key = join.key(obj) if join is not None else ""
    gate = state.gates.get((sub.agent, sub.index))
    out: list[Event] = []
    expired: set[str] = set()
    if gate is not None and join is not None and join.within is not None:
        arrival = gate.arrivals + 1
        for g in gate.groups.values():  # in opening order, so the first live one ends the scan
            reason = _expired(join, g, arrival, now)
            if reason is None:
                break
            expired.add(g.key)
            out.append(_expiry(state, sub.agent, sub.index, g, reason, now))
    group = gate.groups.get(key) if gate is not None and key not in expired else None
    window = join.window_seconds if join is not None else None
    deadline = now + window if group is None and window is not None else None
    # The hot path of every join: a trusted body (tests/test_gates.py validates it).
    body: GateBuffered = {
        "agent": sub.agent,
        "sub_index": sub.index,
        "artifact_id": art.id,
        "type": art.type,
        "key": key,
        "deadline": deadline,
    }
    out.append(trusted_event(state.run_id, EventKind.GATE_BUFFERED, body, now))
    have = {t: list(group.by_type.get(t, ())) if group is not None else [] for t in sub.need}
    have[art.type].append(art.id)
    if all(len(have[t]) >= n for t, n in sub.need.items()):
        taken = {t: iter(have[t][:n]) for t, n in sub.need.items()}
        inputs = [next(taken[t]) for t in sub.types]
        reason_fire = ScheduleReason.JOIN if join is not None else ScheduleReason.GATE
        out.extend(fire(sub, inputs, reason_fire))
    return out


def _expired(join: JoinSpec, group: GroupView, arrival: int, now: float) -> str | None:
    if group.deadline is not None and group.deadline <= now:
        return "time"
    count = join.window_count
    if count is not None and arrival - group.opened_arrival > count:
        return "count"
    return None


def _expiry(
    state: RunState, agent: str, sub_index: int, group: GroupView, reason: str, now: float
) -> Event:
    body = JoinExpired(
        agent=agent, sub_index=sub_index, key=group.key, members=group.members, reason=reason
    )
    return make_event(state.run_id, EventKind.JOIN_EXPIRED, body, now)


def decide_join_expiry(
    state: RunState, agent: str, sub_index: int, key: str, deadline: float, now: float
) -> list[Event]:
    """A join group's timer fired: expire it if it is still the group that timer was for."""
    gate = state.gates.get((agent, sub_index))
    group = gate.groups.get(key) if gate is not None else None
    if group is None or group.deadline != deadline or deadline > now:
        return []
    return [_expiry(state, agent, sub_index, group, "time", now)]
