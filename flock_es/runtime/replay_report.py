"""What a replay reports: the divergence, the timeline, the verdict.

Also the readable one-line description of every event kind, shared by the
replay timeline and anything else that prints a run's history.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from flock_es.domain.events import Event, EventKind
from flock_es.log.writer import dumps
from flock_es.projection.decide import DECISIONS


@dataclass(slots=True)
class Divergence:
    """The first place where the current code does not do what the record says."""

    seq: int
    what: str
    expected: Any
    actual: Any
    agent: str | None = None
    task_id: str | None = None

    def __str__(self) -> str:
        who = f" ({self.agent})" if self.agent else ""
        return (
            f"diverged at seq {self.seq}{who}: {self.what}\n"
            f"  expected (recorded): {_short(self.expected)}\n"
            f"  actual   (replayed): {_short(self.actual)}"
        )


@dataclass(slots=True)
class Step:
    seq: int
    offset: float
    agent: str
    text: str
    ok: bool = True


@dataclass(slots=True)
class ReplayReport:
    run_id: str
    events: int = 0
    identical: bool = True
    divergence: Divergence | None = None
    timeline: list[Step] = field(default_factory=list)
    model_calls: int = 0
    served_calls: int = 0
    tasks_replayed: int = 0
    decisions_checked: int = 0
    pending_at_end: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = "identical" if self.identical else "diverged"
        return out


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_decision(e: Event) -> str:
    b = e.body
    agent = b.get("agent")
    if e.kind is EventKind.TASK_SCHEDULED:
        return f"schedule {agent} on {', '.join(b['inputs'])} ({b.get('reason')})"
    if e.kind is EventKind.BATCH_BUFFERED:
        return f"buffer {b['artifact_id']} for {agent}"
    if e.kind is EventKind.GATE_BUFFERED:
        return f"gate of {agent} takes {b['artifact_id']} (join key {b.get('key')!r})"
    if e.kind is EventKind.PREDICATE_FAILED:
        return f"predicate of {agent} raised {b.get('error')}"
    if e.kind is EventKind.JOIN_EXPIRED:
        return f"join group {b.get('key')!r} of {agent} expires ({b.get('reason')})"
    if e.kind is EventKind.CIRCUIT_TRIPPED:
        return f"circuit breaker of {agent} refuses {', '.join(b.get('inputs', []))}"
    return f"{e.kind.value} {dumps(b)}"


def timeline_step(e: Event, start: float) -> Step:
    """One readable line of a run's history: who did what, when."""
    b = e.body
    agent = str(b.get("agent") or b.get("produced_by") or "")
    k = e.kind
    if k is EventKind.RUN_STARTED:
        text = f"run started · model {b.get('model')} · {len(b.get('agents', []))} agents"
        if b.get("parent_run"):
            text += f" · fork of {b['parent_run']} at seq {b.get('fork_seq')}"
    elif k is EventKind.RUN_RESUMED:
        text = f"run resumed · {b.get('pending_tasks', 0)} pending tasks"
    elif k is EventKind.RUN_FINISHED:
        text = f"run finished: {b.get('status')}" + (f" ({b['reason']})" if b.get("reason") else "")
    elif k is EventKind.ARTIFACT_PUBLISHED:
        text = f"published {b['type']} {b['id']}"
    elif k is EventKind.TASK_SCHEDULED:
        text = f"scheduled {b['task_id']} on {len(b['inputs'])} input(s) ({b.get('reason')})"
    elif k is EventKind.TASK_STARTED:
        text = f"started {b['task_id']} (attempt {b.get('attempt', 1)})"
    elif k is EventKind.MODEL_CALLED:
        text = (
            f"model call {b['call_index']} of {b['task_id']} ({b.get('model')}, "
            f"{b.get('tokens_in', 0) + b.get('tokens_out', 0)} tokens) · served from the record"
        )
    elif k is EventKind.TASK_COMPLETED:
        text = f"completed {b['task_id']} → {len(b.get('outputs', []))} output(s)"
    elif k is EventKind.TASK_FAILED:
        text = f"failed {b['task_id']}: {b.get('error_type')}: {b.get('error')}"
    elif k is EventKind.BATCH_BUFFERED:
        text = f"buffered {b['artifact_id']} (batch {b.get('sub_index')})"
    elif k is EventKind.PREDICATE_FAILED:
        text = f"predicate raised on {b['artifact_id']}: {b.get('error')}"
    elif k in DECISIONS:
        text = describe_decision(e)
    elif k is EventKind.ARTIFACT_RELEASED:
        text = f"released {b.get('artifact_id')} (its visibility delay passed)"
    elif k is EventKind.MODEL_ATTEMPT:
        text = f"model call {b.get('call_index')} of {b.get('task_id')} failed: {b.get('outcome')}"
    elif k is EventKind.TOOL_CALLED:
        text = f"tool {b.get('tool')} called by {b.get('task_id')} · served from the record"
    else:
        text = str(k)
    return Step(seq=e.seq or 0, offset=e.ts - start, agent=agent, text=text)
