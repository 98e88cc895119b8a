"""Before a resume runs anything: would every recorded call still be served honestly?

A task that was running when its run stopped may have model (and tool) calls
recorded. Resume serves them from the log instead of paying again, but only
if the program still asks the same thing. This module re-plays each such
task's conversation against the record, in memory (no model, nothing
recorded), up to its first unrecorded call, and raises ``ProgramChanged``
naming the agent, the task and what changed, with the fork to take instead.
DBOS raises ``DBOSUnexpectedStepError`` in the same case.

Example::

    requests = pending_requests(reader, state)
    await check_recorded_calls(flock, state, requests)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flock_es.domain.events import Event, EventKind, ModelCalled, body_as
from flock_es.errors import ProgramChanged, RecordedCallChanged, ReplayMiss
from flock_es.log.ports import EventReader
from flock_es.models.base import ModelClient
from flock_es.projection.state import RunState
from flock_es.runtime.agent import Agent
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.executor import Executor
from flock_es.runtime.flock import Flock
from flock_es.runtime.kernel import Kernel, build_index
from flock_es.runtime.kernel_ports import NullRecorder, NullSink
from flock_es.runtime.model_calls import ModelCalls

__all__ = ["check_recorded_calls", "pending_requests", "recorded_requests"]

CallKey = tuple[str, int]


def recorded_requests(
    events: Iterable[Event], state: RunState, retry_failed: bool = False
) -> dict[CallKey, dict[str, Any]]:
    """The recorded requests of the model calls of tasks a resume would re-run."""
    pending = _to_rerun(state, retry_failed)
    out: dict[CallKey, dict[str, Any]] = {}
    for e in events:
        if e.kind is EventKind.MODEL_CALLED:
            _note(out, e, pending)
    return out


def pending_requests(
    reader: EventReader, state: RunState, retry_failed: bool = False
) -> dict[CallKey, dict[str, Any]]:
    """``recorded_requests`` of ``state``'s run, read by seq: the fold kept each
    re-run task's calls with the seq of their first record, so only those events
    are read, not the whole log again (a second pass over 1.6M events at 100k).
    """
    pending = _to_rerun(state, retry_failed)
    seqs = [c.seq for (tid, _), c in state.calls.items() if tid in pending]
    if any(seq is None for seq in seqs):  # not folded from this log: read all of it
        return recorded_requests(reader.iter_events(state.run_id), state, retry_failed)
    out: dict[CallKey, dict[str, Any]] = {}
    for seq in sorted(s for s in seqs if s is not None):
        for e in reader.iter_events(state.run_id, after=seq - 1, until=seq):
            if e.kind is EventKind.MODEL_CALLED:
                _note(out, e, pending)
    return out


def _to_rerun(state: RunState, retry_failed: bool) -> set[str]:
    pending = {t.id for t in state.pending_tasks()}
    if retry_failed:
        pending.update(t.id for t in state.retryable_tasks())
    return pending


def _note(out: dict[CallKey, dict[str, Any]], e: Event, pending: set[str]) -> None:
    """The first recorded request of each call of a task in ``pending``."""
    call = body_as(e, ModelCalled)
    if call.get("task_id") in pending:
        key = (str(call["task_id"]), int(call["call_index"]))
        out.setdefault(key, call.get("request") or {})


def _no_client(agent: Agent) -> ModelClient:
    raise ReplayMiss("the pre-flight check never calls a model")


async def check_recorded_calls(
    flock: Flock, state: RunState, requests: Mapping[CallKey, Mapping[str, Any]]
) -> None:
    """Raise ``ProgramChanged`` if a recorded call would answer a changed request."""
    tasks = sorted({k[0] for k in requests})
    if not tasks:
        return
    kernel = Kernel(state.run_id, NullSink(), build_index(flock.agents.values()), state)
    calls = ModelCalls(
        state,
        NullRecorder(),
        _no_client,
        flock.model,
        retry=flock.retry,
        record_only=True,
        requests=requests,
    )
    executor = Executor(kernel, flock.agents, calls)
    # A task's recorded context may be artifacts the compact state let go of.
    executor.board = BoardSource(flock.db_path, state.run_id)
    for task_id in tasks:
        task = state.tasks.get(task_id)
        agent = flock.agents.get(task.agent) if task is not None else None
        if task is None or agent is None or agent.function is not None:
            continue
        run = executor.prepare(task, agent, max(task.attempt, 1), task.context)
        try:
            await executor.outputs(run)
        except RecordedCallChanged as exc:
            seq = state.calls[(exc.task_id, 0)].seq if (exc.task_id, 0) in state.calls else None
            at = f" --at {seq - 1}" if seq else " --at SEQ"
            raise ProgramChanged(
                f"cannot resume run {state.run_id}: {exc}; the program changed since the "
                f"call was paid for, so its answer does not apply: continue as a new run "
                f"with `flock-es fork {state.run_id}{at}`"
            ) from None
        except Exception:  # ReplayMiss: the rest runs live; anything else fails as it would live
            continue
