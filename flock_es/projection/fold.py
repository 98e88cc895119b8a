"""The fold: ``evolve(state, event) -> state``, shared by the runtime, resume,
replay, ``show --at`` and the TUI.

``apply`` is the step itself and updates a state in place: deterministic, total
(an unknown kind or a reference to something unseen is ignored, never an
error) and free of I/O. In-place updates keep a 100,000-event fold linear.
``evolve`` and ``fold`` are the pure faces of the same step: they never touch
the state they are given.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from flock_es.domain.events import Event, EventKind, ScheduleReason, TaskStatus
from flock_es.projection.state import (
    AgentView,
    ArtifactView,
    BatchView,
    CallView,
    RunState,
    TaskView,
)

_BATCH_REASONS = {
    ScheduleReason.BATCH_SIZE.value,
    ScheduleReason.BATCH_TIMEOUT.value,
    ScheduleReason.BATCH_FLUSH.value,
}


def _run_started(s: RunState, e: Event, b: dict[str, Any]) -> None:
    s.run_id = e.run_id
    s.program = b.get("program")
    s.program_hash = b.get("program_hash")
    s.model = b.get("model", "")
    s.started_at = e.ts
    s.parent_run = b.get("parent_run")
    s.fork_seq = b.get("fork_seq")
    s.pid = b.get("pid")
    s.host = b.get("host")
    for a in b.get("agents", []):
        if a["name"] in s.agents:
            continue  # a fork keeps the counters it inherited
        s.agents[a["name"]] = AgentView(
            name=a["name"],
            description=a.get("description", ""),
            kind=a.get("kind", "model"),
            model=a.get("model"),
            publishes=list(a.get("publishes", [])),
            subscriptions=list(a.get("subscriptions", [])),
            max_concurrency=a.get("max_concurrency"),
        )


def _run_finished(s: RunState, e: Event, b: dict[str, Any]) -> None:
    s.finished_at = e.ts
    s.finished_status = b.get("status")
    s.finish_reason = b.get("reason")


def _artifact(s: RunState, e: Event, b: dict[str, Any]) -> None:
    aid = b["id"]
    if aid in s.artifacts:
        return
    s.artifacts[aid] = ArtifactView(
        id=aid,
        type=b["type"],
        payload=b.get("payload", {}),
        produced_by=b.get("produced_by", "external"),
        task_id=b.get("task_id"),
        correlation_id=b.get("correlation_id"),
        tags=list(b.get("tags", [])),
        visibility=b.get("visibility", {"kind": "public"}),
        seq=e.seq,
        ts=e.ts,
    )
    s.by_type.setdefault(b["type"], []).append(aid)


def _agent(s: RunState, name: str) -> AgentView:
    a = s.agents.get(name)
    if a is None:
        a = s.agents[name] = AgentView(name=name)
    return a


def _scheduled(s: RunState, e: Event, b: dict[str, Any]) -> None:
    tid = b["task_id"]
    if tid not in s.tasks:
        s.tasks[tid] = TaskView(
            id=tid,
            agent=b["agent"],
            sub_index=b.get("sub_index", 0),
            inputs=list(b.get("inputs", [])),
            reason=b.get("reason", ScheduleReason.MATCH.value),
            scheduled_at=e.ts,
            seq=e.seq,
        )
    if b.get("reason") in _BATCH_REASONS:
        key = (b["agent"], b.get("sub_index", 0))
        buf = s.batches.get(key)
        if buf is not None:
            taken = set(b.get("inputs", []))
            buf.members = [m for m in buf.members if m not in taken]
            if not buf.members:
                del s.batches[key]


def _started(s: RunState, e: Event, b: dict[str, Any]) -> None:
    t = s.tasks.get(b["task_id"])
    if t is None:
        return
    if t.status is not TaskStatus.RUNNING:
        _agent(s, t.agent).running += 1
    t.status = TaskStatus.RUNNING
    t.attempt = b.get("attempt", t.attempt + 1)
    t.started_at = e.ts


def _finish(s: RunState, e: Event, t: TaskView) -> AgentView:
    a = _agent(s, t.agent)
    if t.status is TaskStatus.RUNNING:
        a.running -= 1
    t.finished_at = e.ts
    if t.started_at is not None:
        a.busy_ms += (e.ts - t.started_at) * 1000.0
    return a


def _completed(s: RunState, e: Event, b: dict[str, Any]) -> None:
    t = s.tasks.get(b["task_id"])
    if t is None or t.status is TaskStatus.COMPLETED:
        return
    a = _finish(s, e, t)
    t.status = TaskStatus.COMPLETED
    t.outputs = list(b.get("outputs", []))
    t.error = None
    a.done += 1


def _failed(s: RunState, e: Event, b: dict[str, Any]) -> None:
    t = s.tasks.get(b["task_id"])
    if t is None or t.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
        return
    a = _finish(s, e, t)
    t.error = b.get("error")
    if b.get("will_retry"):
        t.status = TaskStatus.SCHEDULED
    else:
        t.status = TaskStatus.FAILED
        a.failed += 1


def _model_called(s: RunState, e: Event, b: dict[str, Any]) -> None:
    key = (b["task_id"], b["call_index"])
    if key in s.calls:
        return
    cost = b.get("cost")
    s.calls[key] = CallView(
        task_id=b["task_id"],
        call_index=b["call_index"],
        model=b.get("model", ""),
        response=b.get("response", ""),
        tokens_in=b.get("tokens_in", 0),
        tokens_out=b.get("tokens_out", 0),
        cost=cost,
        latency_ms=b.get("latency_ms", 0.0),
        seq=e.seq,
    )
    t = s.tasks.get(b["task_id"])
    a = _agent(s, b.get("agent") or (t.agent if t else "?"))
    for view in (t, a):
        if view is None:
            continue
        view.calls += 1
        view.tokens_in += b.get("tokens_in", 0)
        view.tokens_out += b.get("tokens_out", 0)
        view.cost = None if cost is None or view.cost is None else view.cost + cost


def _buffered(s: RunState, e: Event, b: dict[str, Any]) -> None:
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
    if b.get("deadline") is not None:
        buf.deadline = b["deadline"]
    if b["artifact_id"] not in buf.members:
        buf.members.append(b["artifact_id"])


def _predicate_failed(s: RunState, e: Event, b: dict[str, Any]) -> None:
    s.predicate_errors.append(dict(b, seq=e.seq))


_HANDLERS: dict[str, Callable[[RunState, Event, dict[str, Any]], None]] = {
    EventKind.RUN_STARTED: _run_started,
    EventKind.RUN_FINISHED: _run_finished,
    EventKind.ARTIFACT_PUBLISHED: _artifact,
    EventKind.TASK_SCHEDULED: _scheduled,
    EventKind.TASK_STARTED: _started,
    EventKind.TASK_COMPLETED: _completed,
    EventKind.TASK_FAILED: _failed,
    EventKind.MODEL_CALLED: _model_called,
    EventKind.BATCH_BUFFERED: _buffered,
    EventKind.PREDICATE_FAILED: _predicate_failed,
}


def apply(state: RunState, event: Event) -> RunState:
    """Apply one event to ``state`` in place and return it (the fold's step)."""
    handler = _HANDLERS.get(event.kind)
    if handler is not None:
        handler(state, event, event.body)
    state.events += 1
    if event.seq is not None:
        state.last_seq = event.seq
    state.last_ts = max(state.last_ts, event.ts)
    return state


def evolve(state: RunState, event: Event) -> RunState:
    """Pure: a new state, ``state`` after ``event``; ``state`` itself is untouched."""
    return apply(copy.deepcopy(state), event)


def fold(events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Pure: the state after ``events``, starting from a copy of ``state`` (or empty)."""
    s = RunState() if state is None else copy.deepcopy(state)
    for e in events:
        apply(s, e)
    return s
