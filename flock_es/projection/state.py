"""The state of one run as the fold derives it. Plain data, no behaviour beyond queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flock_es.domain.events import TaskStatus


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


@dataclass(slots=True)
class AgentView:
    name: str
    description: str = ""
    kind: str = "model"
    model: str | None = None
    publishes: list[str] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    max_concurrency: int | None = None
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
    pid: int | None = None
    host: str | None = None
    agents: dict[str, AgentView] = field(default_factory=dict)
    artifacts: dict[str, ArtifactView] = field(default_factory=dict)
    by_type: dict[str, list[str]] = field(default_factory=dict)
    tasks: dict[str, TaskView] = field(default_factory=dict)
    batches: dict[tuple[str, int], BatchView] = field(default_factory=dict)
    calls: dict[tuple[str, int], CallView] = field(default_factory=dict)
    predicate_errors: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int = 0
    last_ts: float = 0.0
    events: int = 0

    # Queries -------------------------------------------------------------

    def pending_tasks(self) -> list[TaskView]:
        """Tasks scheduled or started but not finished: the work a resume re-runs."""
        return [
            t
            for t in self.tasks.values()
            if t.status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING)
        ]

    def has_pending_work(self) -> bool:
        return bool(self.pending_tasks()) or any(b.members for b in self.batches.values())

    def tasks_by_status(self) -> dict[str, int]:
        out: dict[str, int] = {s.value: 0 for s in TaskStatus}
        for t in self.tasks.values():
            out[t.status.value] += 1
        return out

    def failed_tasks(self) -> list[TaskView]:
        return [t for t in self.tasks.values() if t.status is TaskStatus.FAILED]

    def artifact_counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.by_type.items()}

    def totals(self) -> dict[str, Any]:
        tokens_in = sum(c.tokens_in for c in self.calls.values())
        tokens_out = sum(c.tokens_out for c in self.calls.values())
        costs = [c.cost for c in self.calls.values()]
        cost = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
        return {
            "calls": len(self.calls),
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost": cost,
        }

    def busy_ms(self) -> float:
        return sum(a.busy_ms for a in self.agents.values())
