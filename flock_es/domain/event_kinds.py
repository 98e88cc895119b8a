"""The enumerations of the event vocabulary: the kinds of events, and the status
and reason values their bodies carry. ``flock_es.domain.events`` re-exports them.

Example::

    EventKind.TASK_SCHEDULED == "task.scheduled"
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventKind", "RunStatus", "ScheduleReason", "TaskStatus"]


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
    INPUTS_REWRITTEN = "inputs.rewritten"
    SCHEDULE_VETOED = "schedule.vetoed"
    MCP_LISTED = "mcp.listed"
    CIRCUIT_RESET = "circuit.reset"
    ARTIFACT_DECIDED = "artifact.decided"


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
