"""The event kinds and body fields that SQL reads (the ``spans`` view, run
queries), named once through the event definitions for both dialects: SQL text
is not type-checked, so a renamed field fails here, when the log is imported,
not in a query.

Example::

    f"json_extract(s.body, '$.{STARTED_AGENT}')"   # SQLite
    f"(s.body->>'{STARTED_AGENT}')"                # PostgreSQL
"""

from __future__ import annotations

from flock_es.domain.events import (
    EventKind,
    ModelCalled,
    RunStarted,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    body_field,
)

__all__ = [
    "ANSWERED_ON",
    "ATTEMPT",
    "CALLED",
    "DONE",
    "DONE_AGENT",
    "DURATION",
    "FAILED",
    "PROGRAM_HASH",
    "STARTED",
    "STARTED_AGENT",
    "TOOL_CALLED",
]

STARTED_AGENT = body_field(TaskStarted, "agent")
DONE_AGENT = body_field(TaskCompleted, "agent")
DURATION = body_field(TaskCompleted, "duration_ms")
# An attempt ends with the completion or failure that carries the same attempt number.
ATTEMPT = body_field(TaskStarted, "attempt")
assert ATTEMPT == body_field(TaskCompleted, "attempt") == body_field(TaskFailed, "attempt")
PROGRAM_HASH = body_field(RunStarted, "program_hash")
STARTED, DONE, FAILED = (
    EventKind.TASK_STARTED.value,
    EventKind.TASK_COMPLETED.value,
    EventKind.TASK_FAILED.value,
)
# ``show``'s listing of calls (``EventReader.call_records``): the tool calls and the model
# calls answered on a retry (a ``model.called`` whose ``attempt``, absent: 1, is above 1).
CALLED, TOOL_CALLED = EventKind.MODEL_CALLED.value, EventKind.TOOL_CALLED.value
ANSWERED_ON = body_field(ModelCalled, "attempt")
