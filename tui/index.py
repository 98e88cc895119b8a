"""What the screen needs beyond the fold, kept up to date event by event.

``RunState`` (the shared fold) holds every task and artifact by id. A screen
that draws a window of 40 rows out of 100,000 needs them *in order* and
needs aggregates without a pass over everything: the tasks in schedule order
and per agent, the failed ones, who consumed an artifact, the seqs that
mention a task (to open it), and each agent's durations in order (p50/p95,
``durations.Durations``). ``RunIndex.add`` updates all of that event by event,
after ``apply``, in time that does not grow with the run.

No Textual here; the monitor's worker thread owns the writes.

Example::

    index = RunIndex()
    for e in events:
        apply(state, e)
        index.add(state, e)
    index.percentile("editor", 0.95)
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from flock_es.domain.events import (
    ArtifactPublished,
    Event,
    EventKind,
    TaskCompleted,
    TaskScheduled,
    TaskStarted,
    TaskStatus,
    body_as,
)
from flock_es.projection.state import RunState

from .durations import Durations

__all__ = ["RunIndex"]

_FINISH = (EventKind.TASK_COMPLETED, EventKind.TASK_FAILED)


@dataclass(slots=True)
class RunIndex:
    """Ordered and aggregated views of one folded run (append-mostly lists)."""

    # Every seq folded: an array of machine numbers, not a list of number objects (a
    # 2,600,000-event run's seqs: 21 MB, not 94 MB).
    seqs: array[int] = field(default_factory=lambda: array("q"))
    tasks: list[str] = field(default_factory=list)
    by_agent: dict[str, list[str]] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    in_flight: dict[str, None] = field(default_factory=dict)
    consumers: dict[str, list[str]] = field(default_factory=dict)
    task_seqs: dict[str, list[int]] = field(default_factory=dict)
    durations: dict[str, Durations] = field(default_factory=dict)
    # Some task ran on a `flock-es worker` (the task list grows a worker column).
    workers: bool = False

    def add(self, state: RunState, e: Event) -> None:
        """Index ``e``, already applied to ``state``."""
        if e.seq is not None:
            self.seqs.append(e.seq)
        k = e.kind
        # Every kind about a task names it ``task_id`` (an artifact's is its producer's).
        tid = e.task_id if k is not EventKind.ARTIFACT_PUBLISHED else None
        if tid is not None and e.seq is not None:
            self.task_seqs.setdefault(tid, []).append(e.seq)
        if k is EventKind.TASK_SCHEDULED:
            self._scheduled(state, body_as(e, TaskScheduled)["task_id"])
        elif k is EventKind.TASK_STARTED:
            started = body_as(e, TaskStarted)
            self._moved(state, started["task_id"], k)
            self.workers = self.workers or bool(started.get("worker"))
        elif k in _FINISH:
            self._moved(state, body_as(e, TaskCompleted)["task_id"], k)  # or task.failed
        elif k is EventKind.ARTIFACT_PUBLISHED and len(self.artifacts) < len(state.artifacts):
            self.artifacts.append(body_as(e, ArtifactPublished)["id"])

    def _scheduled(self, state: RunState, tid: str) -> None:
        t = state.tasks.get(tid)
        if t is None or len(self.task_seqs.get(tid, ())) > 1:
            return  # unknown, or scheduled before: indexed once
        self.tasks.append(tid)
        self.by_agent.setdefault(t.agent, []).append(tid)
        self.in_flight[tid] = None
        for aid in t.inputs:
            self.consumers.setdefault(aid, []).append(tid)

    def _moved(self, state: RunState, tid: str, kind: EventKind) -> None:
        t = state.tasks.get(tid)
        if t is None:
            return
        if t.status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING):
            self.in_flight.setdefault(tid, None)
            if tid in self.failed:  # resumed with --retry-failed: in flight again
                self.failed.remove(tid)
            return
        if self.in_flight.pop(tid, 0) is None and kind in _FINISH:
            if t.started_at is not None and t.finished_at is not None:
                durations = self.durations.get(t.agent)
                if durations is None:
                    durations = self.durations[t.agent] = Durations()
                durations.add(t.finished_at - t.started_at)
            if t.status is TaskStatus.FAILED:
                self.failed.append(tid)

    def percentile(self, agent: str, q: float) -> float | None:
        """The ``q`` quantile (0..1) of ``agent``'s finished task durations, seconds."""
        d = self.durations.get(agent)
        return d.quantile(q) if d is not None else None
