"""One ``TypedDict`` per event kind: the single definition of every body's fields.

``flock_es.domain.events`` re-exports them; read them from there. ``NotRequired``
fields may be absent from a stored body; the comment names the value a reader
assumes then.

Example::

    body: TaskStarted = {"task_id": "t-1", "agent": "writer", "attempt": 1}
"""

from __future__ import annotations

from typing import Any, NotRequired

# typing_extensions' TypedDict: pydantic validates it on Python 3.11 too.
from typing_extensions import TypedDict

from flock_es.domain.event_kinds import EventKind

__all__ = [
    "BODIES",
    "AgentSpec",
    "ArtifactDecided",
    "ArtifactPublished",
    "ArtifactReleased",
    "BatchBuffered",
    "Body",
    "CircuitReset",
    "CircuitTripped",
    "GateBuffered",
    "InputsRewritten",
    "JoinExpired",
    "McpListed",
    "ModelAttempt",
    "ModelCalled",
    "PredicateFailed",
    "RunFinished",
    "RunResumed",
    "RunStarted",
    "ScheduleVetoed",
    "SubscriptionSpec",
    "TaskCompleted",
    "TaskFailed",
    "TaskScheduled",
    "TaskStarted",
    "ToolCalled",
]


class SubscriptionSpec(TypedDict):
    """What a reader needs to know about a subscription, without user code."""

    index: int
    types: list[str]
    where: NotRequired[list[str]]  # absent: []
    from_agents: NotRequired[list[str]]  # absent: []
    tags: NotRequired[list[str]]  # absent: []
    batch_size: NotRequired[int | None]  # absent: None
    batch_timeout: NotRequired[float | None]  # absent: None
    join_by: NotRequired[str | None]  # absent: None
    join_window_seconds: NotRequired[float | None]  # absent: None
    join_window_count: NotRequired[int | None]  # absent: None
    priority: NotRequired[int]  # absent: 0


class AgentSpec(TypedDict):
    name: str
    description: NotRequired[str]  # absent: ""
    kind: NotRequired[str]  # "model", "function" or "engine"; absent: "model"
    model: NotRequired[str | None]  # absent: None
    publishes: NotRequired[list[str]]  # absent: []
    subscriptions: NotRequired[list[SubscriptionSpec]]  # absent: []
    max_concurrency: NotRequired[int | None]  # absent: None
    labels: NotRequired[list[str]]  # absent: []
    tenant: NotRequired[str | None]  # absent: None
    tools: NotRequired[list[str]]  # absent: []


class RunStarted(TypedDict):
    program: NotRequired[str | None]  # absent: None
    program_hash: NotRequired[str | None]  # absent: None
    model: str
    agents: list[AgentSpec]
    parent_run: NotRequired[str | None]  # absent: None
    fork_seq: NotRequired[int | None]  # absent: None
    # Forks keep their parent's id namespace, so inherited tasks keep their ids.
    id_root: NotRequired[str | None]  # absent: None
    # How many of the parent's events follow, copied, so the fork's log stands alone.
    inherited: NotRequired[int]  # absent: 0
    # A fork's fork point in time (its last inherited event's ts): every process that
    # arms the inherited timers (the fork, workers, a resume) restarts them relative
    # to the fork from it. absent: None (the fork process alone knew it, in memory)
    fork_ts: NotRequired[float | None]
    pid: NotRequired[int | None]  # absent: None
    host: NotRequired[str | None]  # absent: None
    version: NotRequired[str]  # absent: ""
    # The circuit breaker's limit, so resume and replay decide with the same one.
    max_agent_iterations: NotRequired[int | None]  # absent: None
    # The longest chain of agent runs from a published artifact (``Flock(max_depth=)``);
    # absent: None, no limit, and no depths recorded (runs written before the option).
    max_depth: NotRequired[int]
    # Flock(once_per_agent=True): an agent takes an artifact through one subscription
    # at most (flock-core's rule), so resume and replay decide alike. absent: False
    once_per_agent: NotRequired[bool]
    # The cap on model calls in flight (``run --max-concurrent-calls``,
    # ``Flock(max_concurrent_calls=)``): a resume keeps it unless told another.
    # absent: no cap
    max_concurrent_calls: NotRequired[int]


class RunResumed(TypedDict):
    """A process took over an unfinished run (``flock-es resume``)."""

    program: NotRequired[str | None]  # absent: None
    program_hash: NotRequired[str | None]  # absent: None
    model: str
    pid: NotRequired[int | None]  # absent: None
    host: NotRequired[str | None]  # absent: None
    pending_tasks: NotRequired[int]  # absent: 0
    # Failed tasks that ``resume --retry-failed`` re-runs (their failure was transient).
    retried: NotRequired[list[str]]  # absent: []


class RunFinished(TypedDict):
    status: str  # a RunStatus value
    failed_tasks: NotRequired[list[str]]  # absent: []
    reason: NotRequired[str | None]  # absent: None


class ArtifactPublished(TypedDict):
    id: str
    type: str
    payload: dict[str, Any]
    produced_by: NotRequired[str]  # absent: "external"
    task_id: NotRequired[str | None]  # absent: None
    correlation_id: NotRequired[str | None]  # absent: None
    tags: NotRequired[list[str]]  # absent: []
    visibility: NotRequired[dict[str, Any]]  # absent: {"kind": "public"}
    # Flock's sharding label, given to publish(partition_key=); absent: None.
    partition_key: NotRequired[str]
    # True: decided later, after its ``artifact.decided`` (a large publish_many commits
    # its artifacts at once and schedules their tasks in chunks); absent: decided here.
    deferred: NotRequired[bool]
    # An output's place in its chain of agent runs: its task's depth + 1 (``max_depth``).
    # absent: 0 (a publish from outside, or a run that records no ``max_depth``)
    depth: NotRequired[int]


class TaskScheduled(TypedDict):
    task_id: str
    agent: str
    sub_index: int
    inputs: list[str]
    reason: NotRequired[str]  # a ScheduleReason value; absent: "match"
    # The deepest of its inputs' depths (``max_depth``); absent: 0.
    depth: NotRequired[int]


class TaskStarted(TypedDict):
    task_id: str
    agent: str
    attempt: NotRequired[int]  # absent: 1
    # Earlier artifacts of the correlation given to the agent as context (visible ones only).
    context: NotRequired[list[str] | None]  # absent: None
    # The worker process (host:pid:n) that executes this attempt, under `flock-es worker`.
    worker: NotRequired[str]


class ModelCalled(TypedDict):
    task_id: str
    agent: str
    call_index: int
    model: str
    request: dict[str, Any]
    response: str
    # None: the provider sent no usage (unknown, not zero).
    tokens_in: NotRequired[int | None]  # absent: 0
    tokens_out: NotRequired[int | None]  # absent: 0
    cost: NotRequired[float | None]  # absent: None
    latency_ms: NotRequired[float]  # absent: 0.0
    # Tools the model asked for instead of answering: [{"id", "name", "arguments"}].
    tool_calls: NotRequired[list[dict[str, Any]]]  # absent: []
    # Which attempt answered; the failed ones before it are model.attempt events.
    attempt: NotRequired[int]  # absent: 1
    # The model's shared concurrency budget once it has learned a limit
    # ({"key", "in_flight", "limit", "queued", "paused_for", "rate_limited"}).
    limiter: NotRequired[dict[str, Any] | None]  # absent: None


class ModelAttempt(TypedDict):
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
    status: NotRequired[int | None]  # absent: None
    will_retry: NotRequired[bool]  # absent: False
    retry_in: NotRequired[float | None]  # absent: None
    latency_ms: NotRequired[float]  # absent: 0.0
    # The model's limiter after this attempt (as in model.called), once it has a limit.
    limiter: NotRequired[dict[str, Any] | None]  # absent: None


class ToolCalled(TypedDict):
    """A tool the model asked for, and its result (served from here on resume/replay)."""

    task_id: str
    agent: str
    call_index: int  # the model call that asked for it
    position: int  # its place among that call's tool calls
    call_id: str
    tool: str
    arguments: str
    result: str
    error: NotRequired[str | None]  # absent: None
    duration_ms: NotRequired[float]  # absent: 0.0
    # The MCP server that ran it (``tool`` is then ``{server}__{name}``); absent: a Python tool.
    server: NotRequired[str | None]  # absent: None


class McpListed(TypedDict):
    """The tools an agent's MCP servers offered when its task first asked.

    Recorded before the model sees them, so resume and replay offer the same
    tools (and match the recorded requests) without starting any server.
    ``servers`` maps a server name to its tools, each ``{"name", "description",
    "input_schema"}`` as the server listed it.
    """

    task_id: str
    agent: str
    servers: dict[str, list[dict[str, Any]]]


class TaskCompleted(TypedDict):
    """A task's outputs are recorded. An inline function run that finished on its
    first step has no ``task.started``: its completion, in the same unit, is its
    start too (at ``ts - duration_ms``, attempt ``attempt``)."""

    task_id: str
    agent: str
    outputs: list[str]
    attempt: NotRequired[int]  # absent: 1
    duration_ms: NotRequired[float]  # absent: 0.0
    # Of that, the time its model calls waited: for a slot (a limiter's queue, the
    # global cap), on attempts that failed and between attempts. Not the agent's
    # work, which the summary's busy time counts.
    waited_ms: NotRequired[float]  # absent: 0.0


class TaskFailed(TypedDict):
    task_id: str
    agent: str
    error: str
    error_type: NotRequired[str]  # absent: "Exception"
    attempt: NotRequired[int]  # absent: 1
    will_retry: NotRequired[bool]  # absent: False
    duration_ms: NotRequired[float]  # absent: 0.0
    waited_ms: NotRequired[float]  # absent: 0.0 (as in TaskCompleted)
    raw: NotRequired[str | None]  # absent: None
    # The failure may pass (rate limit, 5xx, timeout, connection): ``resume --retry-failed``.
    transient: NotRequired[bool]  # absent: False


class BatchBuffered(TypedDict):
    agent: str
    sub_index: int
    artifact_id: str
    deadline: NotRequired[float | None]  # absent: None
    # A joined set entering a batch as one unit (join + batch); None for one artifact.
    group: NotRequired[list[str] | None]  # absent: None


class GateBuffered(TypedDict):
    """An artifact reached an AND/count gate or a join (``key`` is its join key, or "")."""

    agent: str
    sub_index: int
    artifact_id: str
    type: str
    key: NotRequired[str]  # absent: ""
    # Set when this artifact opens a group with a time window: when the group expires.
    deadline: NotRequired[float | None]  # absent: None


class JoinExpired(TypedDict):
    """A join group's window passed before it was complete; its members leave the gate."""

    agent: str
    sub_index: int
    key: str
    members: list[str]
    reason: str  # "time" or "count"


class ArtifactDecided(TypedDict):
    """A deferred artifact is decided now: its decisions follow in the same unit."""

    id: str


class ArtifactReleased(TypedDict):
    """An ``AfterVisibility`` artifact's ttl passed: it becomes visible as its ``then``."""

    artifact_id: str


class CircuitTripped(TypedDict):
    """``max_agent_iterations`` reached, or ``max_depth`` (then ``depth`` is present and
    ``limit`` is ``max_depth``): this match was not scheduled."""

    agent: str
    sub_index: int
    inputs: list[str]
    limit: int
    depth: NotRequired[int]  # the run it would have been in its chain; absent: a count trip


class PredicateFailed(TypedDict):
    agent: str
    sub_index: int
    artifact_id: str
    error: str


class InputsRewritten(TypedDict):
    """Agent components (``on_pre_consume``/``on_pre_evaluate``) changed what a task
    evaluates: the evaluated inputs as they were, so replay can compare."""

    task_id: str
    agent: str
    attempt: int
    # [{"type": ..., "payload": ...}] in the order the agent received them.
    inputs: list[dict[str, Any]]
    state: dict[str, Any]


class ScheduleVetoed(TypedDict):
    """An orchestrator component refused one match of an artifact (``on_before_schedule``
    said SKIP or DEFER, or ``on_artifact_published`` blocked the artifact).

    It precedes the artifact in its transaction; deciding that artifact skips the
    match, and replay follows this record instead of asking the component again.
    """

    artifact_id: str
    agent: str
    sub_index: int
    component: str
    decision: str


class CircuitReset(TypedDict):
    """The run went idle under ``Flock(reset_circuit_at_idle=True)``: the circuit
    breaker counts from zero again (flock-core's rule), for these agents."""

    agents: list[str]


BODIES: dict[EventKind, type] = {
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
    EventKind.INPUTS_REWRITTEN: InputsRewritten,
    EventKind.SCHEDULE_VETOED: ScheduleVetoed,
    EventKind.MCP_LISTED: McpListed,
    EventKind.CIRCUIT_RESET: CircuitReset,
    EventKind.ARTIFACT_DECIDED: ArtifactDecided,
}
"""The body definition of every kind (``tests`` check that no kind is missing)."""

Body = (
    RunStarted
    | RunFinished
    | RunResumed
    | ArtifactPublished
    | TaskScheduled
    | TaskStarted
    | ModelCalled
    | TaskCompleted
    | TaskFailed
    | BatchBuffered
    | PredicateFailed
    | GateBuffered
    | JoinExpired
    | ArtifactReleased
    | CircuitTripped
    | ModelAttempt
    | ToolCalled
    | InputsRewritten
    | ScheduleVetoed
    | McpListed
    | CircuitReset
    | ArtifactDecided
)
