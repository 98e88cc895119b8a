"""The fold's steps for what waits before it is scheduled: batch buffers, AND/count
gates and join groups, and the circuit breaker that takes refused inputs out of
them. ``fold.apply`` dispatches to these; like every step they update the state
in place, are total and do no I/O.

Example::

    take_inputs(state, ("editor", 0), ["a-1", "a-2"])  # scheduled: they leave the batch
"""

from __future__ import annotations

from flock_es.domain.events import (
    BatchBuffered,
    CircuitReset,
    CircuitTripped,
    Event,
    GateBuffered,
    JoinExpired,
)
from flock_es.projection.state import BatchView, GateView, GroupView, RunState

__all__ = [
    "batch_buffered",
    "circuit_reset",
    "circuit_tripped",
    "gate_buffered",
    "join_expired",
    "leave_gate",
    "take_inputs",
]


def take_inputs(s: RunState, key: tuple[str, int], inputs: list[str]) -> None:
    """``inputs`` were scheduled (or refused) together: they leave the batch buffer
    and the gate of ``key`` (the buffer closes when empty)."""
    taken = set(inputs)
    buf = s.batches.get(key)
    if buf is not None:
        buf.members = [m for m in buf.members if m not in taken]
        buf.groups = [g for g in buf.groups if not taken.intersection(g)]
        if not buf.members:
            del s.batches[key]
    leave_gate(s, key, inputs)


def leave_gate(s: RunState, key: tuple[str, int], taken: list[str]) -> None:
    """The ``taken`` artifacts leave the gate of ``key`` (their groups close when empty)."""
    gate = s.gates.get(key)
    if gate is None:
        return
    for aid in taken:
        gkey = gate.key_of.pop(aid, None)
        group = gate.groups.get(gkey) if gkey is not None else None
        if group is None:
            continue
        for ids in group.by_type.values():
            if aid in ids:
                ids.remove(aid)
        if not any(group.by_type.values()):
            del gate.groups[group.key]


def batch_buffered(s: RunState, e: Event, b: BatchBuffered) -> None:
    """An artifact (or a joined group) enters its agent's batch buffer."""
    key = (b["agent"], b["sub_index"])
    buf = s.batches.get(key)
    if buf is None:
        size = None
        agent = s.agents.get(b["agent"])
        if agent is not None:
            for sub in agent.subscriptions:
                if sub.get("index") == b["sub_index"]:
                    size = sub.get("batch_size")
        buf = s.batches[key] = BatchView(
            agent=b["agent"], sub_index=b["sub_index"], opened_at=e.ts, size=size
        )
    deadline = b.get("deadline")
    if deadline is not None:
        buf.deadline = deadline
    group = b.get("group") or [b["artifact_id"]]
    fresh = [a for a in group if a not in buf.members]
    if fresh:
        buf.members.extend(fresh)
        buf.groups.append(fresh)
    if b.get("group"):
        leave_gate(s, key, group)


def gate_buffered(s: RunState, e: Event, b: GateBuffered) -> None:
    """An artifact enters an AND/count gate or a join group."""
    if "type" not in b:
        return  # not a body this version wrote: ignored, the fold stays total
    key = (b["agent"], b["sub_index"])
    gate = s.gates.get(key)
    if gate is None:
        gate = s.gates[key] = GateView(agent=b["agent"], sub_index=b["sub_index"])
    aid = b["artifact_id"]
    if aid in gate.key_of:
        return
    gate.arrivals += 1
    gkey = b.get("key", "")
    group = gate.groups.get(gkey)
    if group is None:
        group = gate.groups[gkey] = GroupView(
            key=gkey, opened_at=e.ts, opened_arrival=gate.arrivals, deadline=b.get("deadline")
        )
    group.by_type.setdefault(b["type"], []).append(aid)
    gate.key_of[aid] = gkey


def join_expired(s: RunState, e: Event, b: JoinExpired) -> None:
    """A join group's window passed: its members leave the gate."""
    gate = s.gates.get((b["agent"], b["sub_index"]))
    if gate is not None and b["key"] in gate.groups:
        del gate.groups[b["key"]]
        for aid in b["members"]:
            gate.key_of.pop(aid, None)
        gate.expired += 1
    s.expired_joins.append(dict(b, seq=e.seq, ts=e.ts))


def circuit_tripped(s: RunState, e: Event, b: CircuitTripped) -> None:
    """The circuit breaker refused a match: counted, and its inputs leave their buffers."""
    s.agent_view(b["agent"]).tripped += 1
    # The refused inputs leave their batch or gate, or they would trip again on every flush.
    take_inputs(s, (b["agent"], b["sub_index"]), b["inputs"])
    s.circuit_trips.append(dict(b, seq=e.seq))


def circuit_reset(s: RunState, e: Event, b: CircuitReset) -> None:
    """The run went idle under ``reset_circuit_at_idle``: the breaker counts from here."""
    for name in b["agents"]:
        view = s.agents.get(name)
        if view is not None:
            view.breaker_base = view.scheduled
