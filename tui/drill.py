"""Drill-down: what ``enter`` opens for the row selected in each view."""

from __future__ import annotations

from typing import Any

from flock_es.log.reader import LogReader
from flock_es.projection.state import RunState

from . import rows


def detail(
    view: str, key: str, state: RunState, reader: LogReader, seq: int | None
) -> tuple[str, Any] | None:
    """(title, data) to pretty-print for ``key`` in ``view``, or None if there is nothing.

    Example::

        detail("artifacts", "a-0aeabb97", state, reader, None)
        # ("NewsDigest a-0aeabb97 by editor", {"headline": ...})
    """
    s = state
    if view == "agents" and key in s.agents:
        return f"agent {key}", rows.agent_detail(s, key)
    if view == "tasks" and key in s.tasks:
        return f"task {key}", rows.task_detail(s, s.tasks[key])
    if view == "artifacts" and key in s.artifacts:
        a = s.artifacts[key]
        return f"{a.type} {a.id} by {a.produced_by}", a.payload
    if view == "batches":
        agent, _, rest = key.partition("[")
        sub, _, group = rest.partition("]")
        if group.startswith("/"):
            gate = s.gates.get((agent, int(sub)))
            g = gate.groups.get(group[1:]) if gate is not None else None
            return (f"gate {key}", g.by_type) if g is not None else None
        b = s.batches.get((agent, int(sub)))
        if b is None:
            return None
        members = {i: s.artifacts[i].payload if i in s.artifacts else None for i in b.members}
        return f"batch {key}", members
    if view == "log" and seq is not None:
        events = reader.events(s.run_id, after=seq - 1, until=seq)
        if events:
            e = events[0]
            return f"seq {e.seq} {e.kind}", {"ts": e.ts, "body": e.body}
    return None
