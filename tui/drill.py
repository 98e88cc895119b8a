"""Drill-down: what ``enter`` opens for the row selected in each view."""

from __future__ import annotations

from flock_es.log.ports import EventReader
from flock_es.projection.state import RunState

from . import rows
from .detail import Detail, Link, artifact_detail, pretty, task_detail
from .index import RunIndex
from .on_disk import payloads_of

__all__ = ["KIND_OF_VIEW", "detail"]

KIND_OF_VIEW = {
    "agents": "agent",
    "tasks": "task",
    "failures": "task",
    "artifacts": "artifact",
    "batches": "batch",
    "log": "event",
}


def detail(
    kind: str, key: str, state: RunState, index: RunIndex, reader: EventReader
) -> Detail | None:
    """The detail of object ``key`` of ``kind``, or None if there is nothing to show.

    Example::

        detail("artifact", "a-0aeabb97", state, index, reader).title
        # "NewsDigest a-0aeabb97 by editor"
    """
    s = state
    if kind == "task" and key in s.tasks:
        return task_detail(s, index, reader, key)
    if kind == "artifact" and key in s.artifacts:
        return artifact_detail(s, index, reader, key)
    if kind == "agent" and key in s.agents:
        data = rows.agent_detail(s, index, key)
        links = [Link(f"task {t} ({st})", "task", t) for t, st in data["recent tasks"].items()]
        return Detail(f"agent {key}", [pretty(data, s.run_id)], links, data)
    if kind == "batch":
        return _batch(s, key, reader)
    if kind == "event":
        events = reader.events(s.run_id, after=int(key) - 1, until=int(key))
        if events:
            e = events[0]
            data = {"ts": rows.fmt_iso(e.ts), "body": e.body}
            links = [Link(f"task {e.task_id}", "task", e.task_id)] if e.task_id else []
            body = [pretty(data, s.run_id, events=True)]
            return Detail(f"seq {e.seq} {e.kind}", body, links, data)
    return None


def _batch(s: RunState, key: str, reader: EventReader) -> Detail | None:
    agent, _, rest = key.partition("[")
    sub, _, group = rest.partition("]")
    if group.startswith("/"):
        gate = s.gates.get((agent, int(sub)))
        g = gate.groups.get(group[1:]) if gate is not None else None
        if g is None:
            return None
        links = [Link(f"member {a}", "artifact", a) for ids in g.by_type.values() for a in ids]
        return Detail(f"gate {key}", [pretty(g.by_type, s.run_id)], links, dict(g.by_type))
    b = s.batches.get((agent, int(sub)))
    if b is None:
        return None
    payloads = payloads_of([s.artifacts[i] for i in b.members if i in s.artifacts], reader)
    members = {i: payloads.get(i) for i in b.members}
    links = [Link(f"member {a}", "artifact", a) for a in b.members]
    return Detail(f"batch {key}", [pretty(members, s.run_id)], links, members)
