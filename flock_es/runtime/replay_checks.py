"""How replay compares a re-executed task with its record: the outputs one by
one against the recorded ``artifact.published`` events, the number of outputs
against ``task.completed``, the error against ``task.failed``. Each check
returns the first ``Divergence`` or None.

Example::

    div = completed_divergence(event, body_as(event, TaskCompleted), task_id, outcome)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flock_es.domain.events import ArtifactPublished, Event, TaskCompleted, TaskFailed
from flock_es.domain.registry import type_name
from flock_es.log.event_rows import dumps
from flock_es.runtime.replay_report import Divergence

__all__ = [
    "TaskOutcome",
    "completed_divergence",
    "failed_divergence",
    "output_divergence",
    "output_matches",
]


@dataclass(slots=True)
class TaskOutcome:
    """What re-executing a task gave: its outputs, or its error, or why it could not run
    as recorded (``divergence``: what, expected, actual)."""

    outputs: list[BaseModel] | None = None
    error: str | None = None
    error_type: str | None = None
    divergence: tuple[str, Any, Any] | None = None


def output_matches(b: ArtifactPublished, done: TaskCompleted, out: TaskOutcome) -> bool:
    """True where ``output_divergence`` finds nothing, at less cost: the common answer.

    The payload is compared as ``model_dump`` gives it, not through its JSON text
    and back (a quarter of a task's check): JSON values equal before that round
    trip are equal after it (floats and big ints come back exact; NaN is never
    equal to itself, so it takes the full check), so True here means no
    divergence there; False means only that the full check must say what differs.
    """
    outs = out.outputs
    if outs is None:
        return False
    ids = done["outputs"]
    aid = b["id"]
    if aid not in ids:
        return False
    pos = ids.index(aid)
    if pos >= len(outs):
        return False
    o = outs[pos]
    return type_name(type(o)) == b["type"] and o.model_dump(mode="json") == b["payload"]


def output_divergence(
    e: Event, b: ArtifactPublished, done: TaskCompleted, out: TaskOutcome, agent: str
) -> Divergence | None:
    """The recorded output ``b`` (of the task ``done`` completed) against the replayed one."""
    tid = done["task_id"]
    expected = {"type": b["type"], "payload": b["payload"]}
    if out.outputs is None:
        return Divergence(
            e.seq or 0,
            f"task {tid} failed on replay",
            expected,
            f"{out.error_type}: {out.error}",
            agent,
            tid,
        )
    pos = done["outputs"].index(b["id"]) if b["id"] in done["outputs"] else -1
    if not 0 <= pos < len(out.outputs):
        return Divergence(
            e.seq or 0, f"output {pos} of task {tid}", expected, "no such output", agent, tid
        )
    o = out.outputs[pos]
    actual = {"type": type_name(type(o)), "payload": json.loads(dumps(o.model_dump(mode="json")))}
    if actual != expected:
        return Divergence(e.seq or 0, f"output {pos} of task {tid}", expected, actual, agent, tid)
    return None


def completed_divergence(
    e: Event, b: TaskCompleted, tid: str, out: TaskOutcome
) -> Divergence | None:
    """A recorded completion against the replay: it must complete with as many outputs."""
    if out.outputs is None:
        return Divergence(
            e.seq or 0,
            f"task {tid} failed on replay",
            "completed",
            f"{out.error_type}: {out.error}",
            b["agent"],
            tid,
        )
    if len(out.outputs) != len(b["outputs"]):
        return Divergence(
            e.seq or 0,
            f"number of outputs of task {tid}",
            len(b["outputs"]),
            len(out.outputs),
            b["agent"],
            tid,
        )
    return None


def failed_divergence(e: Event, b: TaskFailed, tid: str, out: TaskOutcome) -> Divergence | None:
    """A recorded failure against the replay: it must fail with the same error type."""
    expected = f"failed: {b.get('error_type')}: {b.get('error')}"
    if out.outputs is not None:
        types = [type_name(type(o)) for o in out.outputs]
        return Divergence(
            e.seq or 0,
            f"task {tid} succeeded on replay",
            expected,
            f"completed with {types}",
            b["agent"],
            tid,
        )
    if out.error_type != b.get("error_type"):
        return Divergence(
            e.seq or 0,
            f"error of task {tid}",
            expected,
            f"failed: {out.error_type}: {out.error}",
            b["agent"],
            tid,
        )
    return None
