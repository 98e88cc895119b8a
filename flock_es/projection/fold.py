"""The fold: ``evolve(state, event) -> state``, shared by the runtime, resume,
replay, ``show --at`` and the TUI. The steps of runs, artifacts and tasks are
here; those of model and tool calls are in ``fold_calls``, those of batch
buffers, gates, joins and the circuit breaker in ``fold_gates``.

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

from flock_es.domain.events import (
    ArtifactDecided,
    ArtifactPublished,
    ArtifactReleased,
    Event,
    EventKind,
    PredicateFailed,
    RunFinished,
    RunResumed,
    RunStarted,
    ScheduleReason,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TaskStatus,
)
from flock_es.projection.fold_calls import mcp_listed, model_attempt, model_called, tool_called
from flock_es.projection.fold_compact import (
    PRUNE_AT,
    SPANS_HELD,
    compacted,
    count_span,
    forget_task,
    prune_artifacts,
)
from flock_es.projection.fold_components import inputs_rewritten, schedule_vetoed
from flock_es.projection.fold_gates import (
    batch_buffered,
    circuit_reset,
    circuit_tripped,
    gate_buffered,
    join_expired,
    leave_gate,
    take_inputs,
)
from flock_es.projection.state import (
    AgentView,
    ArtifactView,
    RunState,
    TaskView,
)

__all__ = [
    "PRUNE_AT",
    "SPANS_HELD",
    "apply",
    "artifact_view",
    "compacted",
    "evolve",
    "fold",
    "forget_task",
    "prune_artifacts",
]

_BATCH_REASONS = {
    ScheduleReason.BATCH_SIZE.value,
    ScheduleReason.BATCH_TIMEOUT.value,
    ScheduleReason.BATCH_FLUSH.value,
}
_GATE_REASONS = {ScheduleReason.GATE.value, ScheduleReason.JOIN.value}
_MATCH = ScheduleReason.MATCH.value  # an enum's .value is a property call: once, here
# Enum members bound to module globals for the hot paths: in Python 3.11 ``Kind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_SCHEDULED, _RUNNING = TaskStatus.SCHEDULED, TaskStatus.RUNNING
_COMPLETED, _FAILED = TaskStatus.COMPLETED, TaskStatus.FAILED
# One dict for the visibility of every public artifact (most of them): a dict per
# artifact view was about a tenth of a long run's memory. Views are never mutated.
_PUBLIC: dict[str, Any] = {"kind": "public"}
# Likewise one empty list for the tags of every untagged artifact and the outputs of
# every task not yet completed (a list each was 56 bytes of every view).
_NONE: list[str] = []


def _run_started(s: RunState, e: Event, b: RunStarted) -> None:
    s.run_id = e.run_id
    s.program = b.get("program")
    s.program_hash = b.get("program_hash")
    s.model = b["model"]
    s.started_at = e.ts
    s.parent_run = b.get("parent_run")
    s.fork_seq = b.get("fork_seq")
    s.fork_ts = b.get("fork_ts")
    s.id_root = b.get("id_root")
    s.max_agent_iterations = b.get("max_agent_iterations")
    s.max_depth = b.get("max_depth")
    s.once_per_agent = b.get("once_per_agent", False)
    s.pid = b.get("pid")
    s.host = b.get("host")
    for a in b["agents"]:
        if a["name"] in s.agents:
            continue  # a fork keeps the counters it inherited
        s.agents[a["name"]] = AgentView(
            name=a["name"],
            description=a.get("description", ""),
            kind=a.get("kind", "model"),
            model=a.get("model"),
            publishes=list(a.get("publishes", [])),
            subscriptions=[dict(sub) for sub in a.get("subscriptions", [])],
            max_concurrency=a.get("max_concurrency"),
            labels=list(a.get("labels", [])),
            tenant=a.get("tenant"),
        )


def _run_finished(s: RunState, e: Event, b: RunFinished) -> None:
    s.finished_at = e.ts
    s.finished_status = b["status"]
    s.finish_reason = b.get("reason")


def _run_resumed(s: RunState, e: Event, b: RunResumed) -> None:
    s.finished_at = None
    s.finished_status = None
    s.finish_reason = None
    s.pid = b.get("pid")
    s.host = b.get("host")
    s.resumed += 1
    for tid in b.get("retried", ()):
        # ``resume --retry-failed``: the task is scheduled again; its attempts keep counting.
        t = s.tasks.get(tid)
        if t is not None and t.status is _FAILED:
            t.status = _SCHEDULED
            t.error = None
            t.transient = False
            s.agent_view(t.agent).failed -= 1


def artifact_view(b: ArtifactPublished, seq: int | None, ts: float, chars: int = 0) -> ArtifactView:
    """The view of the artifact ``b`` publishes (at ``seq``, time ``ts``; its event's body
    ``chars`` long, if known), not released: the fold's, and the runtime's for an
    artifact a compact state let go of."""
    vis = b.get("visibility")
    # Positional, in the fields' order (id, type, payload, produced_by, task_id,
    # correlation_id, tags, visibility, seq, ts, released, partition_key, chars, depth):
    # a call by keywords matches each name, and this runs once per artifact (issue 14).
    return ArtifactView(
        b["id"],
        b["type"],
        b["payload"],
        b.get("produced_by", "external"),
        b.get("task_id"),
        b.get("correlation_id"),
        list(tags) if (tags := b.get("tags")) else _NONE,
        _PUBLIC if vis is None or vis == _PUBLIC else vis,
        seq,
        ts,
        False,
        b.get("partition_key"),
        chars,
        b.get("depth", 0),
    )


def _artifact(s: RunState, e: Event, b: ArtifactPublished) -> None:
    aid = b["id"]
    arts = s.artifacts
    if aid in arts:
        return
    vis = b.get("visibility")
    after = bool(vis and vis.get("kind") == "after")
    if b.get("deferred"):
        if aid in s.undecided:
            return
        s.undecided[aid] = e.seq  # where its decider reads it (None: not yet committed)
        if s.compact and not after:
            # Its decision comes later (``artifact.decided``), one chunk at a time: a
            # compact state holds only its id, and whoever decides it reads its view
            # from the log then (issue 14: a 100,000-artifact publish held every view).
            _count(s, b["type"])
            return
    size = e.size  # read from the log: its body's length; applied live: 0 (until committed)
    view = artifact_view(b, e.seq, e.ts, size)
    if s.compact:
        if len(arts) >= s.prune_at or s.held_chars + size > s.prune_chars:
            prune_artifacts(s)  # before the new view is added: its decision reads it
        s.held_chars += size
    else:
        s.by_type.setdefault(b["type"], []).append(aid)
    arts[aid] = view
    counts, name = s.type_counts, b["type"]  # ``_count``, inlined: once per artifact
    counts[name] = counts.get(name, 0) + 1
    if after and vis is not None:
        s.unreleased[aid] = e.ts + float(vis.get("ttl", 0.0))


def _count(s: RunState, type_name: str) -> None:
    counts = s.type_counts
    counts[type_name] = counts.get(type_name, 0) + 1


def _decided(s: RunState, e: Event, b: ArtifactDecided) -> None:
    s.undecided.pop(b["id"], None)


def _scheduled(s: RunState, e: Event, b: TaskScheduled) -> None:
    tid = b["task_id"]
    reason = b.get("reason", _MATCH)
    if tid not in s.tasks:
        # Positional, in the fields' order (as ``artifact_view``: once per task), the
        # others at their defaults: id, agent, sub_index, inputs (the event's own list:
        # events are never mutated, and neither are views), reason, status, attempt,
        # scheduled_at, started_at, finished_at, outputs, error, calls, tokens_in,
        # tokens_out, cost, seq.
        s.tasks[tid] = TaskView(
            tid,
            b["agent"],
            b["sub_index"],
            b["inputs"],
            reason,
            _SCHEDULED,
            0,
            e.ts,
            None,
            None,
            _NONE,
            None,
            0,
            0,
            0,
            0.0,
            e.seq,
        )
        (s.agents.get(b["agent"]) or s.agent_view(b["agent"])).scheduled += 1  # see _finish
        depth = b.get("depth")
        if depth:  # absent but in chains of agents (``max_depth``)
            s.tasks[tid].depth = depth
    if reason in _BATCH_REASONS:
        take_inputs(s, (b["agent"], b["sub_index"]), b["inputs"])
    elif reason in _GATE_REASONS:
        leave_gate(s, (b["agent"], b["sub_index"]), b["inputs"])


def _started(s: RunState, e: Event, b: TaskStarted) -> None:
    t = s.tasks.get(b["task_id"])
    if t is None:
        return
    if t.status is not _RUNNING:
        s.agent_view(t.agent).running += 1
    t.status = _RUNNING
    t.attempt = b.get("attempt", t.attempt + 1)
    t.started_at = e.ts
    worker = b.get("worker")
    t.worker = worker if isinstance(worker, str) else None
    context = b.get("context")
    if context is not None:
        t.context = list(context)


def _finish(s: RunState, e: Event, t: TaskView, waited: float) -> AgentView:
    # ``agent_view``'s call only for an agent not seen yet (views are always true).
    a = s.agents.get(t.agent) or s.agent_view(t.agent)
    if t.status is _RUNNING:
        a.running -= 1
    t.finished_at = e.ts
    t.waited = waited
    if t.started_at is not None:
        a.busy_ms += (e.ts - t.started_at - waited) * 1000.0
    return a


def _completed(s: RunState, e: Event, b: TaskCompleted) -> None:
    t = s.tasks.get(b["task_id"])
    if t is None or t.status is _COMPLETED:
        return
    if t.status is _SCHEDULED:
        # Started and finished in one unit without a task.started (an inline function
        # run): the completion carries the attempt, and its duration gives the start.
        t.attempt = b.get("attempt", 1)
        t.started_at = e.ts - b.get("duration_ms", 0.0) / 1000.0
        t.worker = None
    # ``_finish``, inlined (once per task run).
    a = s.agents.get(t.agent) or s.agent_view(t.agent)
    if t.status is _RUNNING:
        a.running -= 1
    t.finished_at = end = e.ts
    # Waiting for model-call slots (a rate-limited run's queue) is not the agent's work.
    t.waited = waited = b.get("waited_ms", 0.0) / 1000.0
    start = t.started_at
    if start is not None:
        a.busy_ms += (end - start - waited) * 1000.0
    t.status = _COMPLETED
    t.outputs = list(b["outputs"])
    t.error = None
    a.done += 1
    if s.compact:
        if start is not None:
            count_span(s, start, end, waited)
        forget_task(s, t)


def _failed(s: RunState, e: Event, b: TaskFailed) -> None:
    t = s.tasks.get(b["task_id"])
    if t is None or t.status in (_COMPLETED, _FAILED):
        return
    a = _finish(s, e, t, b.get("waited_ms", 0.0) / 1000.0)
    t.error = b["error"]
    t.transient = bool(b.get("transient"))
    if b.get("will_retry"):
        t.status = _SCHEDULED
    else:
        t.status = _FAILED
        a.failed += 1


def _released(s: RunState, e: Event, b: ArtifactReleased) -> None:
    s.unreleased.pop(b["artifact_id"], None)
    art = s.artifacts.get(b["artifact_id"])
    if art is not None:
        art.released = True


def _predicate_failed(s: RunState, e: Event, b: PredicateFailed) -> None:
    s.predicate_errors.append(dict(b, seq=e.seq))


# Each handler reads its kind's body through the kind's definition (mypy checks the keys).
_HANDLERS: dict[str, Callable[[RunState, Event, Any], None]] = {
    EventKind.RUN_STARTED: _run_started,
    EventKind.RUN_FINISHED: _run_finished,
    EventKind.RUN_RESUMED: _run_resumed,
    EventKind.ARTIFACT_PUBLISHED: _artifact,
    EventKind.TASK_SCHEDULED: _scheduled,
    EventKind.TASK_STARTED: _started,
    EventKind.TASK_COMPLETED: _completed,
    EventKind.TASK_FAILED: _failed,
    EventKind.MODEL_CALLED: model_called,
    EventKind.BATCH_BUFFERED: batch_buffered,
    EventKind.PREDICATE_FAILED: _predicate_failed,
    EventKind.GATE_BUFFERED: gate_buffered,
    EventKind.JOIN_EXPIRED: join_expired,
    EventKind.ARTIFACT_RELEASED: _released,
    EventKind.CIRCUIT_TRIPPED: circuit_tripped,
    EventKind.MODEL_ATTEMPT: model_attempt,
    EventKind.TOOL_CALLED: tool_called,
    EventKind.INPUTS_REWRITTEN: inputs_rewritten,
    EventKind.SCHEDULE_VETOED: schedule_vetoed,
    EventKind.MCP_LISTED: mcp_listed,
    EventKind.CIRCUIT_RESET: circuit_reset,
    EventKind.ARTIFACT_DECIDED: _decided,
}


def apply(state: RunState, event: Event) -> RunState:
    """Apply one event to ``state`` in place and return it (the fold's step)."""
    handler = _HANDLERS.get(event.kind)
    if handler is not None:
        handler(state, event, event.body)
    state.events += 1
    if event.seq is not None:
        state.last_seq = event.seq
    if event.ts > state.last_ts:
        state.last_ts = event.ts
    return state


def evolve(state: RunState, event: Event) -> RunState:
    """Pure: a new state, ``state`` after ``event``; ``state`` itself is untouched."""
    return apply(copy.deepcopy(state), event)


def fold(events: Iterable[Event], state: RunState | None = None, compact: bool = False) -> RunState:
    """Pure: the state after ``events``, starting from a copy of ``state`` (or empty);
    ``compact``: only what decisions need (see ``compacted``)."""
    s = RunState(compact=compact) if state is None else copy.deepcopy(state)
    if compact and not s.compact:
        compacted(s)
    for e in events:
        apply(s, e)
    return s
