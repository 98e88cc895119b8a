"""The state of one run as the fold derives it. Plain data, no behaviour beyond queries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flock_es.domain.events import TaskStatus
from flock_es.projection.payload_size import HELD_CHARS

__all__ = [
    "PENDING_STATUSES",
    "AgentView",
    "ArtifactView",
    "BatchView",
    "CallView",
    "GateView",
    "GroupView",
    "RunState",
    "TaskView",
    "ToolCallView",
    "is_open",
    "limiter_summary",
]


PENDING_STATUSES = (TaskStatus.SCHEDULED, TaskStatus.RUNNING)
"""The statuses of a task still to run (a compact state forgets completed ones)."""


def is_open(task: TaskView | None) -> bool:
    """Whether ``task`` is still to run (None: a compact state forgot it: completed)."""
    return task is not None and task.status in PENDING_STATUSES


@dataclass(slots=True)
class ArtifactView:
    id: str
    type: str
    payload: dict[str, Any]
    produced_by: str
    task_id: str | None
    correlation_id: str | None
    tags: list[str]
    visibility: dict[str, Any]
    seq: int | None
    ts: float
    # For an "after" visibility: whether its artifact.released event has been folded.
    released: bool = False
    partition_key: str | None = None
    # The characters of its event's JSON body, once known (``payload_size``): what it
    # weighs in memory. Not part of what the view says: equal views may not know it yet.
    chars: int = field(default=0, compare=False, repr=False)
    # Its place in its chain of agent runs (0: published from outside; ``max_depth``).
    depth: int = 0


@dataclass(slots=True)
class CallView:
    """A recorded model call; resume and replay serve ``response`` from here."""

    task_id: str
    call_index: int
    model: str
    response: str
    tokens_in: int
    tokens_out: int
    cost: float | None
    latency_ms: float
    seq: int | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    attempt: int = 1


@dataclass(slots=True)
class ToolCallView:
    """A recorded tool call; resume and replay serve ``result`` instead of calling again."""

    task_id: str
    agent: str
    call_index: int
    position: int
    tool: str
    arguments: str
    result: str
    error: str | None
    seq: int | None


@dataclass(slots=True)
class TaskView:
    id: str
    agent: str
    sub_index: int
    inputs: list[str]
    reason: str
    status: TaskStatus = TaskStatus.SCHEDULED
    attempt: int = 0
    scheduled_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = 0.0
    seq: int | None = None
    context: list[str] | None = None
    # Failed on a provider error that may pass (``resume --retry-failed`` re-runs it).
    transient: bool = False
    # The `flock-es worker` (host:pid:n) of the latest attempt; None when run in-process.
    worker: str | None = None
    # Seconds its latest finished attempt's model calls waited: for a slot, on failed
    # attempts and between attempts (``waited_ms``). Not counted as the agent's busy time.
    waited: float = 0.0
    # The deepest of its inputs' depths; its outputs are one deeper (``max_depth``).
    depth: int = 0


@dataclass(slots=True)
class AgentView:
    name: str
    description: str = ""
    kind: str = "model"
    model: str | None = None
    publishes: list[str] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    max_concurrency: int | None = None
    labels: list[str] = field(default_factory=list)
    tenant: str | None = None
    scheduled: int = 0
    # ``scheduled`` at the last circuit.reset: the breaker counts what came after.
    breaker_base: int = 0
    tripped: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    busy_ms: float = 0.0
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = 0.0

    @property
    def status(self) -> str:
        if self.running:
            return "running"
        if self.failed and not self.done:
            return "failed"
        return "idle"

    @property
    def avg_ms(self) -> float:
        n = self.done + self.failed
        return self.busy_ms / n if n else 0.0


@dataclass(slots=True)
class BatchView:
    agent: str
    sub_index: int
    members: list[str] = field(default_factory=list)
    opened_at: float = 0.0
    deadline: float | None = None
    size: int | None = None
    # Each unit that entered the batch: one artifact, or a joined set (join + batch).
    groups: list[list[str]] = field(default_factory=list)


@dataclass(slots=True)
class GroupView:
    """Artifacts waiting in a gate under one join key ("" for a plain AND gate)."""

    key: str
    by_type: dict[str, list[str]] = field(default_factory=dict)
    opened_at: float = 0.0
    opened_arrival: int = 0
    deadline: float | None = None

    @property
    def members(self) -> list[str]:
        return [a for ids in self.by_type.values() for a in ids]


@dataclass(slots=True)
class GateView:
    """The waiting room of one AND/count/join subscription: its open groups."""

    agent: str
    sub_index: int
    groups: dict[str, GroupView] = field(default_factory=dict)
    key_of: dict[str, str] = field(default_factory=dict)
    arrivals: int = 0
    expired: int = 0


@dataclass(slots=True)
class RunState:
    """Everything known about one run after folding a prefix of its events."""

    run_id: str = ""
    program: str | None = None
    program_hash: str | None = None
    model: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    finished_status: str | None = None
    finish_reason: str | None = None
    parent_run: str | None = None
    fork_seq: int | None = None
    fork_ts: float | None = None  # a fork's fork point in time (see RunStarted)
    id_root: str | None = None
    pid: int | None = None
    host: str | None = None
    resumed: int = 0
    agents: dict[str, AgentView] = field(default_factory=dict)
    # Every artifact's view; in a compact state only those not yet durable or still
    # needed by pending work (``pinned_artifacts``): the runtime reads the others from
    # the log (``flock_es.runtime.artifacts``).
    artifacts: dict[str, ArtifactView] = field(default_factory=dict)
    # Artifact ids by type, in publication order (a full fold only: a compact one counts).
    by_type: dict[str, list[str]] = field(default_factory=dict)
    type_counts: dict[str, int] = field(default_factory=dict)
    # A compact fold lets go of the views it does not need when it holds this many,
    # or once their payloads' strings hold ``prune_chars`` characters (``held_chars``:
    # added up as views come, counted again at each prune; ``payload_size``).
    prune_at: int = 4096
    held_chars: int = 0
    prune_chars: int = HELD_CHARS
    tasks: dict[str, TaskView] = field(default_factory=dict)
    batches: dict[tuple[str, int], BatchView] = field(default_factory=dict)
    calls: dict[tuple[str, int], CallView] = field(default_factory=dict)
    predicate_errors: list[dict[str, Any]] = field(default_factory=list)
    gates: dict[tuple[str, int], GateView] = field(default_factory=dict)
    max_agent_iterations: int | None = None
    # The longest chain of agent runs (``run.started``'s ``max_depth``); None: no limit,
    # and no depths recorded (a run written before the option).
    max_depth: int | None = None
    # flock-core's rule (Flock(once_per_agent=True)): one subscription per agent and artifact.
    once_per_agent: bool = False
    # AfterVisibility artifacts not yet released, with the time they are due.
    unreleased: dict[str, float] = field(default_factory=dict)
    expired_joins: list[dict[str, Any]] = field(default_factory=list)
    circuit_trips: list[dict[str, Any]] = field(default_factory=list)
    # Failed model-call attempts (model.attempt bodies with their seq), in log order.
    model_attempts: list[dict[str, Any]] = field(default_factory=list)
    # The latest limiter snapshot per model endpoint (from model.called/model.attempt).
    limiters: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Tool calls keyed (task id, model call index, position).
    tool_calls: dict[tuple[str, int, int], ToolCallView] = field(default_factory=dict)
    # What agent components made a task evaluate (inputs.rewritten bodies), by task id.
    rewritten_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Matches orchestrator components refused: (artifact id, agent, sub index) -> body.
    vetoed: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    # MCP tools listed for a task (``mcp.listed``): task id -> server -> tool dicts.
    mcp_tools: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    # Artifacts committed with ``deferred`` and not decided yet, in publish order: a
    # large publish_many schedules their tasks in chunks (``artifact.decided``). A
    # compact state holds their ids and seqs only, not their views (read from the log
    # by seq when decided; ``fold._artifact``). The seq is None until committed.
    undecided: dict[str, int | None] = field(default_factory=dict)
    last_seq: int = 0
    last_ts: float = 0.0
    events: int = 0
    # The runtime's fold (run, resume, replay) keeps only what decisions need: a
    # completed task leaves ``tasks`` (and its calls), counted in ``finished``.
    # ``show``, the TUI and export fold everything.
    #
    # Its id does not stay: a log has one ``task.scheduled`` per task, and no event of
    # a task after its completion (``fold.forget_task`` says why), so the fold needs
    # no memory of every task to schedule none twice.
    compact: bool = False
    finished: int = 0
    # The executions of the tasks a compact fold forgot: their summed time, and the
    # union of their (start, end) intervals, merged (the summary's busy/active time);
    # the oldest spans are summed into ``finished_active`` up to ``spans_floor``.
    finished_busy: float = 0.0
    finished_spans: list[tuple[float, float]] = field(default_factory=list)
    finished_active: float = 0.0
    spans_floor: float = float("-inf")

    # Queries -------------------------------------------------------------

    def agent_view(self, name: str) -> AgentView:
        """The view of agent ``name``, made empty for an agent no ``run.started`` named."""
        view = self.agents.get(name)
        if view is None:
            view = self.agents[name] = AgentView(name=name)
        return view

    @property
    def ids_run(self) -> str:
        """The run id that task ids are derived from (a fork keeps its parent's)."""
        return self.id_root or self.run_id

    def pending_tasks(self) -> list[TaskView]:
        """Tasks scheduled or started but not finished: the work a resume re-runs."""
        return list(self.iter_pending())

    def iter_pending(self) -> Iterator[TaskView]:
        """``pending_tasks()`` one at a time: a caller that wants a few (a worker's
        claim) or whether there is one stops early, where the list is made whole (a
        shared run's claims each made the list of its thousands of pending tasks)."""
        return (t for t in self.tasks.values() if t.status in PENDING_STATUSES)

    def has_pending_tasks(self) -> bool:
        """Whether a task is scheduled or started but not finished."""
        return next(self.iter_pending(), None) is not None

    def has_pending_work(self) -> bool:
        return (
            self.has_pending_tasks()
            or any(b.members for b in self.batches.values())
            or bool(self.unreleased)
            or bool(self.undecided)
        )

    def waiting_gates(self) -> list[tuple[GateView, GroupView]]:
        """Join/AND groups still waiting for members (the TUI and ``show`` list them)."""
        return [(gv, g) for gv in self.gates.values() for g in gv.groups.values() if g.by_type]

    def tasks_by_status(self) -> dict[str, int]:
        out: dict[str, int] = {s.value: 0 for s in TaskStatus}
        for t in self.tasks.values():
            out[t.status.value] += 1
        out[TaskStatus.COMPLETED.value] += self.finished
        return out

    def failed_tasks(self) -> list[TaskView]:
        return [t for t in self.tasks.values() if t.status is TaskStatus.FAILED]

    def retryable_tasks(self) -> list[TaskView]:
        """Failed tasks whose failure may pass (rate limit, 5xx, timeout, connection)."""
        return [t for t in self.failed_tasks() if t.transient]

    def artifact_counts(self) -> dict[str, int]:
        """How many artifacts of each type the run published."""
        return dict(self.type_counts)

    def pinned_artifacts(self) -> set[str]:
        """The artifacts pending work refers to: inputs and context of tasks not completed,
        batch and gate members, and artifacts not yet released. A compact state keeps
        their views (decisions read them); it may let go of the rest. Not those still
        to be decided (``undecided``): their decision reads them from the log, a chunk
        at a time, when it comes (a large publish_many's would be all of them)."""
        pinned: set[str] = set(self.unreleased)
        for t in self.tasks.values():
            if t.status is TaskStatus.COMPLETED:
                continue  # only a full state holds these: nothing pending
            pinned.update(t.inputs)
            if t.context:
                pinned.update(t.context)
        for b in self.batches.values():
            pinned.update(b.members)
            for g in b.groups:
                pinned.update(g)
        for gv in self.gates.values():
            for grp in gv.groups.values():
                for ids in grp.by_type.values():
                    pinned.update(ids)
        return pinned

    def totals(self) -> dict[str, Any]:
        if self.compact:  # the calls of completed tasks are gone; the agents counted them
            return _agent_totals(self.agents.values())
        tokens_in = sum(c.tokens_in for c in self.calls.values())
        tokens_out = sum(c.tokens_out for c in self.calls.values())
        costs = [c.cost for c in self.calls.values()]
        # Dollars, a float even with no call (as the agents' sums in a compact state).
        cost = None if None in costs else sum((c for c in costs if c is not None), 0.0)
        return {
            "calls": len(self.calls),
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost": cost,
        }

    def busy_ms(self) -> float:
        return sum(a.busy_ms for a in self.agents.values())


def _agent_totals(agents: Iterable[AgentView]) -> dict[str, Any]:
    views = list(agents)
    costs = [a.cost for a in views]
    return {
        "calls": sum(a.calls for a in views),
        "tokens_in": sum(a.tokens_in for a in views),
        "tokens_out": sum(a.tokens_out for a in views),
        "cost": None if None in costs else sum((c for c in costs if c is not None), 0.0),
    }


def limiter_summary(lim: dict[str, Any]) -> str:
    """One model's shared concurrency budget, as the progress line and the TUI show it.

    Example::

        limiter_summary({"key": "openai/gpt-4o", "in_flight": 8, "limit": 8})
        # 'openai/gpt-4o: 8 in flight, limit 8'
    """
    text = f"{lim.get('key')}: {lim.get('in_flight', 0)} in flight"
    if lim.get("limit") is not None:
        text += f", limit {lim['limit']}"
    if lim.get("queued"):
        text += f", {lim['queued']} queued"
    if lim.get("paused_for"):
        text += f", paused {float(lim['paused_for']):.1f}s"
    return text
