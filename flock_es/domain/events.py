"""The event vocabulary: one enumeration of kinds, one pydantic model per body.

Bodies are validated at the edges (when the runtime emits them, when an export
is imported). The fold reads the plain dict bodies, which keeps a 100,000-event
fold fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
"""Version stamped on every event body; bump and add an upcaster when bodies change."""


class EventKind(StrEnum):
    RUN_STARTED = "run.started"
    RUN_FINISHED = "run.finished"
    RUN_RESUMED = "run.resumed"
    ARTIFACT_PUBLISHED = "artifact.published"
    TASK_SCHEDULED = "task.scheduled"
    TASK_STARTED = "task.started"
    MODEL_CALLED = "model.called"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    BATCH_BUFFERED = "batch.buffered"
    PREDICATE_FAILED = "predicate.failed"
    GATE_BUFFERED = "gate.buffered"
    JOIN_EXPIRED = "join.expired"
    ARTIFACT_RELEASED = "artifact.released"
    CIRCUIT_TRIPPED = "circuit.tripped"
    MODEL_ATTEMPT = "model.attempt"
    TOOL_CALLED = "tool.called"


class TaskStatus(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class ScheduleReason(StrEnum):
    MATCH = "match"
    BATCH_SIZE = "batch_size"
    BATCH_TIMEOUT = "batch_timeout"
    BATCH_FLUSH = "batch_flush"
    JOIN = "join"
    INVOKE = "invoke"
    GATE = "gate"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubscriptionSpec(_Body):
    """What a reader needs to know about a subscription, without user code."""

    index: int
    types: list[str]
    where: list[str] = Field(default_factory=list)
    from_agents: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    batch_size: int | None = None
    batch_timeout: float | None = None
    join_by: str | None = None
    join_window_seconds: float | None = None
    join_window_count: int | None = None
    priority: int = 0


class AgentSpec(_Body):
    name: str
    description: str = ""
    kind: str = "model"  # "model" or "function"
    model: str | None = None
    publishes: list[str] = Field(default_factory=list)
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)
    max_concurrency: int | None = None
    labels: list[str] = Field(default_factory=list)
    tenant: str | None = None
    tools: list[str] = Field(default_factory=list)


class RunStarted(_Body):
    program: str | None = None
    program_hash: str | None = None
    model: str
    agents: list[AgentSpec]
    parent_run: str | None = None
    fork_seq: int | None = None
    # Forks keep their parent's id namespace, so inherited tasks keep their ids.
    id_root: str | None = None
    # How many of the parent's events follow, copied, so the fork's log stands alone.
    inherited: int = 0
    pid: int | None = None
    host: str | None = None
    version: str = ""
    # The circuit breaker's limit, so resume and replay decide with the same one.
    max_agent_iterations: int | None = None


class RunResumed(_Body):
    """A process took over an unfinished run (``flock-es resume``)."""

    program: str | None = None
    program_hash: str | None = None
    model: str
    pid: int | None = None
    host: str | None = None
    pending_tasks: int = 0


class RunFinished(_Body):
    status: RunStatus
    failed_tasks: list[str] = Field(default_factory=list)
    reason: str | None = None


class ArtifactPublished(_Body):
    id: str
    type: str
    payload: dict[str, Any]
    produced_by: str = "external"
    task_id: str | None = None
    correlation_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    visibility: dict[str, Any] = Field(default_factory=lambda: {"kind": "public"})


class TaskScheduled(_Body):
    task_id: str
    agent: str
    sub_index: int
    inputs: list[str]
    reason: ScheduleReason = ScheduleReason.MATCH


class TaskStarted(_Body):
    task_id: str
    agent: str
    attempt: int = 1
    # Earlier artifacts of the correlation given to the agent as context (visible ones only).
    context: list[str] | None = None


class ModelCalled(_Body):
    task_id: str
    agent: str
    call_index: int
    model: str
    request: dict[str, Any]
    response: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    latency_ms: float = 0.0
    # Tools the model asked for instead of answering: [{"id", "name", "arguments"}].
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    # Which attempt answered; the failed ones before it are model.attempt events.
    attempt: int = 1


class ModelAttempt(_Body):
    """A model call attempt that gave no usable answer.

    ``outcome``: rate_limited, server_error, connection, timeout (retried with
    backoff), auth, bad_request, not_found (not retried), or invalid_output
    (the answer did not validate; the model is asked again with the error).
    """

    task_id: str
    agent: str
    call_index: int
    attempt: int
    outcome: str
    error: str
    status: int | None = None
    will_retry: bool = False
    retry_in: float | None = None
    latency_ms: float = 0.0


class ToolCalled(_Body):
    """A tool the model asked for, and its result (served from here on resume/replay)."""

    task_id: str
    agent: str
    call_index: int  # the model call that asked for it
    position: int  # its place among that call's tool calls
    call_id: str
    tool: str
    arguments: str
    result: str
    error: str | None = None
    duration_ms: float = 0.0


class TaskCompleted(_Body):
    task_id: str
    agent: str
    outputs: list[str]
    attempt: int = 1
    duration_ms: float = 0.0


class TaskFailed(_Body):
    task_id: str
    agent: str
    error: str
    error_type: str = "Exception"
    attempt: int = 1
    will_retry: bool = False
    duration_ms: float = 0.0
    raw: str | None = None


class BatchBuffered(_Body):
    agent: str
    sub_index: int
    artifact_id: str
    deadline: float | None = None
    # A joined set entering a batch as one unit (join + batch); None for one artifact.
    group: list[str] | None = None


class GateBuffered(_Body):
    """An artifact reached an AND/count gate or a join (``key`` is its join key, or "")."""

    agent: str
    sub_index: int
    artifact_id: str
    type: str
    key: str = ""
    # Set when this artifact opens a group with a time window: when the group expires.
    deadline: float | None = None


class JoinExpired(_Body):
    """A join group's window passed before it was complete; its members leave the gate."""

    agent: str
    sub_index: int
    key: str
    members: list[str]
    reason: str  # "time" or "count"


class ArtifactReleased(_Body):
    """An ``AfterVisibility`` artifact's ttl passed: it becomes visible as its ``then``."""

    artifact_id: str


class CircuitTripped(_Body):
    """``max_agent_iterations`` reached: this match was not scheduled."""

    agent: str
    sub_index: int
    inputs: list[str]
    limit: int


class PredicateFailed(_Body):
    agent: str
    sub_index: int
    artifact_id: str
    error: str


BODY_MODELS: dict[EventKind, type[_Body]] = {
    EventKind.RUN_STARTED: RunStarted,
    EventKind.RUN_FINISHED: RunFinished,
    EventKind.RUN_RESUMED: RunResumed,
    EventKind.ARTIFACT_PUBLISHED: ArtifactPublished,
    EventKind.TASK_SCHEDULED: TaskScheduled,
    EventKind.TASK_STARTED: TaskStarted,
    EventKind.MODEL_CALLED: ModelCalled,
    EventKind.TASK_COMPLETED: TaskCompleted,
    EventKind.TASK_FAILED: TaskFailed,
    EventKind.BATCH_BUFFERED: BatchBuffered,
    EventKind.PREDICATE_FAILED: PredicateFailed,
    EventKind.GATE_BUFFERED: GateBuffered,
    EventKind.JOIN_EXPIRED: JoinExpired,
    EventKind.ARTIFACT_RELEASED: ArtifactReleased,
    EventKind.CIRCUIT_TRIPPED: CircuitTripped,
    EventKind.MODEL_ATTEMPT: ModelAttempt,
    EventKind.TOOL_CALLED: ToolCalled,
}

_KIND_OF: dict[type[_Body], EventKind] = {v: k for k, v in BODY_MODELS.items()}


@dataclass(slots=True)
class Event:
    """One entry of the log. ``seq`` is None until the writer has committed it."""

    run_id: str
    kind: EventKind
    body: dict[str, Any]
    ts: float
    seq: int | None = None
    v: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task_id(self) -> str | None:
        tid = self.body.get("task_id")
        return tid if isinstance(tid, str) else None


def make_event(run_id: str, body: _Body, ts: float) -> Event:
    """Wrap a validated body in an event envelope."""
    return Event(run_id=run_id, kind=_KIND_OF[type(body)], body=body.model_dump(mode="json"), ts=ts)


def trusted_event(run_id: str, kind: EventKind, body: dict[str, Any], ts: float) -> Event:
    """An event whose body the runtime built itself from typed values, on the hot path.

    Skips pydantic validation (a few microseconds an event at tens of thousands of
    events a second). ``tests/test_event_bodies.py`` validates every body a real run
    emits against ``BODY_MODELS``, so the two cannot drift apart.
    """
    return Event(run_id=run_id, kind=kind, body=body, ts=ts)


def validate_body(kind: str, body: dict[str, Any]) -> Event | None:
    """Validate a body read from outside (an import); raises pydantic ValidationError."""
    model = BODY_MODELS[EventKind(kind)]
    model.model_validate(body)
    return None


def upcast(kind: str, v: int, body: dict[str, Any]) -> dict[str, Any]:
    """Bring an old event body up to SCHEMA_VERSION. Version 1 is the first."""
    return body
