"""Resume and fork: continue a recorded run, or branch a new one off it.

Both start from the fold of the log. Resume hands the folded state to the
program's ``Flock`` (which then skips ``run.started``), records ``run.resumed``
and re-launches every task that was scheduled or started but not finished;
batch timers are re-armed from their recorded deadlines. Model calls already
recorded for a task are served from the record by ``(task id, call index)``.

A fork copies the parent's events up to the fork point into a new run, so the
child's log is self-contained (it can be exported and replayed on its own).
It keeps the parent's id namespace (``id_root``), so inherited tasks keep
their ids and a re-executed inherited task produces the same artifact ids.

Example::

    state = load_run(reader, "r-2026...")
    flock = program.flock
    prepare_resume(flock, state, db)
    await drive(flock, start_resumed(flock), progress=None)
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from flock_es._version import __version__
from flock_es.domain import ids
from flock_es.domain.events import (
    ArtifactPublished,
    BatchBuffered,
    Event,
    EventKind,
    RunResumed,
    RunStarted,
    RunStatus,
    ScheduleReason,
    TaskScheduled,
    body_as,
    make_event,
)
from flock_es.errors import AtOutOfRange
from flock_es.log.backends import DbRef

# Re-exported: live_status and pid_alive moved down to the log layer so readers
# (cli show/runs, the TUI) need not import the runtime.
from flock_es.log.liveness import live_status as live_status
from flock_es.log.liveness import pid_alive as pid_alive
from flock_es.log.ports import EventReader, Lease, open_store
from flock_es.log.snapshots import fold_run
from flock_es.projection.decide import DECISIONS
from flock_es.projection.state import RunState
from flock_es.runtime.flock import Flock

_RUN_KINDS = {EventKind.RUN_STARTED, EventKind.RUN_FINISHED, EventKind.RUN_RESUMED}
_UNIT_KINDS = {
    EventKind.ARTIFACT_PUBLISHED,
    EventKind.ARTIFACT_RELEASED,
    EventKind.TASK_COMPLETED,
    EventKind.SCHEDULE_VETOED,
    *DECISIONS,
}
_TRIGGERED = {ScheduleReason.MATCH.value, ScheduleReason.BATCH_SIZE.value}


def check_at(reader: EventReader, run_id: str, at: int | None) -> int | None:
    """Validate ``--at SEQ`` against the run's range of sequence numbers."""
    if at is None:
        return None
    first, last = reader.first_seq(run_id), reader.last_seq(run_id)
    if at > last:
        raise AtOutOfRange(f"--at {at} is beyond the end of run {run_id} (last seq {last})")
    if at < first:
        raise AtOutOfRange(f"--at {at} is before the start of run {run_id} (first seq {first})")
    return at


def load_run(
    reader: EventReader, run_id: str, at: int | None = None, compact: bool = False
) -> RunState:
    """The folded state of ``run_id`` (up to and including seq ``at``), folded from
    its latest snapshot at or before ``at`` when there is a sound one; ``compact``:
    only what decisions need (``fold_run``), as ``show``'s text view reads it."""
    state, _ = fold_run(reader, run_id, check_at(reader, run_id, at), compact=compact)
    return state


def resumable_work(state: RunState) -> int:
    """Tasks to re-run plus timers to re-arm: what ``Engine.resume_pending`` restarts.

    A run closed without waiting (``await flock.close()`` right after a
    publish) is "completed" yet may still owe a batch timeout, a join window's
    expiry or an ``AfterVisibility`` release; each of those counts as work.
    """
    batches = sum(1 for b in state.batches.values() if b.members and b.deadline is not None)
    windows = sum(1 for _, group in state.waiting_gates() if group.deadline is not None)
    pending = len(state.pending_tasks()) + len(state.undecided)  # deferred: to decide
    return pending + batches + windows + len(state.unreleased)


def nothing_to_resume(state: RunState, retry_failed: bool = False) -> bool:
    """A run with no work left: nothing pending, and no failed task to retry if asked."""
    if retry_failed and state.retryable_tasks():
        return False
    finished = state.finished_status in (RunStatus.COMPLETED.value, RunStatus.FAILED.value)
    if not finished and state.retryable_tasks() and resumable_work(state) == 0:
        return True  # interrupted by a provider outage: only --retry-failed has work
    return finished and resumable_work(state) == 0


def prepare(flock: Flock, state: RunState, db: DbRef, model: str | None, program: Path) -> None:
    """Point ``flock`` (freshly loaded from the program) at the recorded run."""
    flock.db_path = db
    flock.model = model or state.model or flock.model
    flock.program = program.resolve()
    flock.continue_from(state)


async def start_resumed(
    flock: Flock,
    record: bool = True,
    retry_failed: bool = False,
) -> int:
    """Start the engine on the folded state, record ``run.resumed``, re-launch the work.

    ``retry_failed``: also re-run the tasks that failed on a transient provider
    error (``TaskView.transient``); ``run.resumed`` records which, and their
    attempt numbers continue where they stopped. A fork's inherited timers restart
    relative to its recorded fork point.
    """
    engine = await flock.start()
    if record:
        program = flock.program
        retried = [t.id for t in engine.state.retryable_tasks()] if retry_failed else []
        body = RunResumed(
            program=str(program) if program else None,
            program_hash=program_hash(program),
            model=flock.model,
            pid=os.getpid(),
            host=socket.gethostname(),
            pending_tasks=len(engine.state.pending_tasks()) + len(retried),
        )
        if retried:
            body["retried"] = retried
        await engine.emit([make_event(flock.run_id, EventKind.RUN_RESUMED, body, time.time())])
    if flock.share is not None:  # a shared run: its tasks are claimed under leases
        engine.decide_deferred()
        return flock.share.resume_pending(engine)
    return engine.resume_pending()


def program_hash(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return ids.content_hash(path.read_bytes())


# --- fork ------------------------------------------------------------------


def unit_end(events: list[Event], at: int) -> int:
    """Move ``at`` forward to the end of the transaction it falls in.

    The writer never splits a unit (an agent's outputs, its completion and the
    schedules they cause; or a publish and its schedules), so a fork must not
    either: all events of a unit share one timestamp, and a decision follows
    the artifact that caused it.
    """
    prefix = [e for e in events if e.seq is not None and e.seq <= at]
    if not prefix:
        return at
    rest = events[len(prefix) :]
    unit_ts = prefix[-1].ts if prefix[-1].kind in _UNIT_KINDS else None
    seen = {
        body_as(e, ArtifactPublished)["id"]
        for e in prefix
        if e.kind is EventKind.ARTIFACT_PUBLISHED
    }
    for e in rest:
        trigger = _trigger(e)
        same_unit = unit_ts is not None and e.ts == unit_ts and e.kind in _UNIT_KINDS
        if not same_unit and not (trigger is not None and trigger in seen):
            break
        if e.kind is EventKind.ARTIFACT_PUBLISHED:
            seen.add(body_as(e, ArtifactPublished)["id"])
        at = e.seq if e.seq is not None else at
    return at


def _trigger(e: Event) -> str | None:
    """The artifact whose publication decided ``e``, for decision events."""
    if e.kind is EventKind.TASK_SCHEDULED:
        scheduled = body_as(e, TaskScheduled)
        inputs = scheduled.get("inputs")
        return str(inputs[-1]) if scheduled.get("reason") in _TRIGGERED and inputs else None
    if e.kind in (EventKind.BATCH_BUFFERED, EventKind.PREDICATE_FAILED, EventKind.GATE_BUFFERED):
        # All three name the artifact that arrived under the same field.
        return str(body_as(e, BatchBuffered).get("artifact_id"))
    return None


def fork_events(
    parent: list[Event], parent_state: RunState, at: int, flock: Flock, model: str
) -> list[Event]:
    """The child's first events: its ``run.started``, then the parent's prefix, re-labelled."""
    program = flock.program
    started = RunStarted(
        program=str(program) if program else None,
        program_hash=program_hash(program),
        model=model,
        agents=[a.spec() for a in flock.agents.values()],
        parent_run=parent_state.run_id,
        fork_seq=at,
        id_root=parent_state.ids_run,
        pid=os.getpid(),
        host=socket.gethostname(),
        version=__version__,
    )
    if flock.once_per_agent:
        started["once_per_agent"] = True
    child = flock.run_id
    out: list[Event] = []
    for e in parent:
        if e.seq is None or e.seq > at:
            break
        if e.kind in _RUN_KINDS:
            continue
        out.append(Event(run_id=child, kind=e.kind, body=e.body, ts=e.ts, v=e.v))
    started["inherited"] = len(out)
    # The fork point in time, recorded: whoever arms the inherited timers (this
    # process, a worker, a later resume) restarts them relative to the fork.
    started["fork_ts"] = max((e.ts for e in out), default=None)
    return [make_event(child, EventKind.RUN_STARTED, started, time.time()), *out]


async def write_fork(db: DbRef, events: list[Event], lease: Lease | None = None) -> None:
    """Write the child's inherited prefix in one transaction (fenced by the child's lease)."""
    writer = await open_store(db).open_writer(fence=lease)
    try:
        await writer.append(events)
    finally:
        await writer.close()
