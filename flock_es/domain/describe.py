"""One readable line per event: what the replay timeline, its divergences and the TUI print.

Each kind's line reads the body through the kind's definition, so a renamed
field is a type error here too. Decisions read as what was decided ("schedule
x on ..."), everything else as what happened. ``describe`` is total: a kind this
version does not know is shown by its first fields.

Example::

    describe(event)  # 'schedule editor on a-1, a-2 (batch_size) → t-3f2a'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flock_es.domain import event_bodies as body
from flock_es.domain.events import Event, EventKind

__all__ = ["actor", "describe"]


def _run_started(b: body.RunStarted) -> str:
    text = f"run started · model {b['model']} · {len(b['agents'])} agents"
    if b.get("parent_run"):
        text += f" · fork of {b.get('parent_run')} at seq {b.get('fork_seq')}"
    return text


def _run_resumed(b: body.RunResumed) -> str:
    retried = len(b.get("retried", ()))
    again = f" · {retried} failed tasks retried" if retried else ""
    return f"run resumed · {b.get('pending_tasks', 0)} pending tasks{again}"


def _run_finished(b: body.RunFinished) -> str:
    reason = b.get("reason")
    return f"run finished: {b['status']}" + (f" ({reason})" if reason else "")


def _published(b: body.ArtifactPublished) -> str:
    return f"published {b['type']} {b['id']}"


def _released(b: body.ArtifactReleased) -> str:
    return f"released {b['artifact_id']} (its visibility delay passed)"


def _scheduled(b: body.TaskScheduled) -> str:
    inputs = ", ".join(b["inputs"])
    return f"schedule {b['agent']} on {inputs} ({b.get('reason', 'match')}) → {b['task_id']}"


def _started(b: body.TaskStarted) -> str:
    return f"started {b['task_id']} (attempt {b.get('attempt', 1)})"


def _model_called(b: body.ModelCalled) -> str:
    tokens = (b.get("tokens_in") or 0) + (b.get("tokens_out") or 0)
    return f"model call {b['call_index']} of {b['task_id']} ({b['model']}, {tokens} tokens)"


def _model_attempt(b: body.ModelAttempt) -> str:
    retry = " · will retry" if b.get("will_retry") else ""
    return f"model call {b['call_index']} of {b['task_id']} failed: {b['outcome']}{retry}"


def _tool_called(b: body.ToolCalled) -> str:
    error = b.get("error")
    return f"tool {b['tool']} called by {b['task_id']}" + (f" · error: {error}" if error else "")


def _mcp_listed(b: body.McpListed) -> str:
    tools = ", ".join(f"{name} ({len(tools)} tools)" for name, tools in b["servers"].items())
    return f"MCP tools for {b['task_id']}: {tools or 'none'}"


def _completed(b: body.TaskCompleted) -> str:
    return f"completed {b['task_id']} → {', '.join(b['outputs']) or 'no outputs'}"


def _failed(b: body.TaskFailed) -> str:
    retry = " (will retry)" if b.get("will_retry") else ""
    return f"failed {b['task_id']}: {b.get('error_type', 'Exception')}: {b['error']}{retry}"


def _batch_buffered(b: body.BatchBuffered) -> str:
    group = b.get("group")
    what = ", ".join(group) if group else b["artifact_id"]
    sub = f" (subscription {b['sub_index']})" if b["sub_index"] else ""
    return f"buffer {what} in the batch of {b['agent']}{sub}"


def _gate_buffered(b: body.GateBuffered) -> str:
    key = b.get("key", "")
    return f"gate of {b['agent']} takes {b['artifact_id']}" + (
        f" (join key {key!r})" if key else ""
    )


def _predicate_failed(b: body.PredicateFailed) -> str:
    return f"predicate of {b['agent']} raised on {b['artifact_id']}: {b['error']}"


def _join_expired(b: body.JoinExpired) -> str:
    return f"join group {b['key']!r} of {b['agent']} expires ({b['reason']})"


def _circuit_tripped(b: body.CircuitTripped) -> str:
    inputs = ", ".join(b["inputs"])
    if "depth" in b:
        return f"max_depth refuses {b['agent']} on {inputs} (a chain of {b['limit']} agent runs)"
    return f"circuit breaker of {b['agent']} refuses {inputs} (limit {b['limit']})"


def _inputs_rewritten(b: body.InputsRewritten) -> str:
    types = ", ".join(str(i.get("type")) for i in b["inputs"]) or "no inputs"
    return f"components of {b['agent']} rewrote the inputs of {b['task_id']} → {types}"


def _schedule_vetoed(b: body.ScheduleVetoed) -> str:
    return (
        f"{b['component']} refuses {b['artifact_id']} to {b['agent']} "
        f"(subscription {b['sub_index']}, {b['decision']})"
    )


def _circuit_reset(b: body.CircuitReset) -> str:
    return f"idle: circuit breaker counts reset for {', '.join(b['agents'])}"


def _decided(b: body.ArtifactDecided) -> str:
    return f"{b['id']} decided (published earlier, deferred)"


# Each function reads its kind's body through the kind's definition (mypy checks the keys).
_LINES: dict[str, Callable[[Any], str]] = {
    EventKind.RUN_STARTED: _run_started,
    EventKind.RUN_RESUMED: _run_resumed,
    EventKind.RUN_FINISHED: _run_finished,
    EventKind.ARTIFACT_PUBLISHED: _published,
    EventKind.ARTIFACT_RELEASED: _released,
    EventKind.TASK_SCHEDULED: _scheduled,
    EventKind.TASK_STARTED: _started,
    EventKind.MODEL_CALLED: _model_called,
    EventKind.MODEL_ATTEMPT: _model_attempt,
    EventKind.TOOL_CALLED: _tool_called,
    EventKind.TASK_COMPLETED: _completed,
    EventKind.TASK_FAILED: _failed,
    EventKind.BATCH_BUFFERED: _batch_buffered,
    EventKind.GATE_BUFFERED: _gate_buffered,
    EventKind.PREDICATE_FAILED: _predicate_failed,
    EventKind.JOIN_EXPIRED: _join_expired,
    EventKind.CIRCUIT_TRIPPED: _circuit_tripped,
    EventKind.INPUTS_REWRITTEN: _inputs_rewritten,
    EventKind.SCHEDULE_VETOED: _schedule_vetoed,
    EventKind.MCP_LISTED: _mcp_listed,
    EventKind.CIRCUIT_RESET: _circuit_reset,
    EventKind.ARTIFACT_DECIDED: _decided,
}


def describe(event: Event) -> str:
    """One line saying what ``event`` records (without its seq, time or actor)."""
    line = _LINES.get(event.kind)
    if line is not None:
        try:
            return line(event.body)
        except (KeyError, TypeError):
            pass  # a body this version did not write: fall through to its fields
    fields = ", ".join(f"{k}={v}" for k, v in list(event.body.items())[:4])
    return f"{event.kind} {fields}".strip()


def actor(event: Event) -> str:
    """Who the event is about: its agent, or who produced its artifact ("" for the run)."""
    b = event.body
    return str(b.get("agent") or b.get("produced_by") or "")
