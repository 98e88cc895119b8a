"""Fork: a new run from the state of another at a seq, continued live.

A fork copies the parent's events up to the fork point into a new run, so the
child's log is self-contained (it can be exported and replayed on its own).
It keeps the parent's id namespace (``id_root``), so inherited tasks keep
their ids and a re-executed inherited task produces the same artifact ids.

Neither run is ever held whole: a fork of a 20,000-artifact run at its middle
held both (the parent's events, its full fold, the copy, then the child's full
fold) and took 683 MB. Here the fork point is found by reading on from the seq
asked for (``fork_point``), the parent's state at it is its compact fold (from
its latest snapshot), the copy is one transaction written a chunk at a time as
the parent's events are read (``write_fork``), and the child then starts as a
resume does: from the compact fold of its log, with the views its pending work
pins read back (``resume.fold_for_work``), a shared child's (workers take part)
as well.

Example (in a coroutine; ``flock-es fork`` also takes the child's lease first)::

    plan = plan_fork(db, parent_id, 120)   # plan.cut: 120, or where its unit ends
    flock = load_program(plan.program).flock
    await start_fork(flock, plan, model=None)
    await flock.run_until_idle()
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flock_es._version import __version__
from flock_es.domain.events import (
    ArtifactPublished,
    BatchBuffered,
    Event,
    EventKind,
    RunStarted,
    ScheduleReason,
    TaskScheduled,
    body_as,
    make_event,
)
from flock_es.log.backends import DbRef, open_reader
from flock_es.log.event_stream import append_streamed
from flock_es.log.ports import EventReader, Lease, open_store
from flock_es.log.snapshots import fold_run
from flock_es.projection.decide import DECISIONS
from flock_es.projection.state import RunState
from flock_es.runtime.flock import Flock
from flock_es.runtime.resume import (
    check_at,
    fold_for_work,
    prepare,
    program_hash,
    program_of,
    start_resumed,
)

__all__ = ["COPY_CHUNK", "ForkPlan", "fork_point", "plan_fork", "start_fork", "write_fork"]

COPY_CHUNK = 4096
"""Inherited events handed to the writer at a time."""

_RUN_KINDS = (EventKind.RUN_STARTED, EventKind.RUN_FINISHED, EventKind.RUN_RESUMED)
_UNIT_KINDS = {
    EventKind.ARTIFACT_PUBLISHED,
    EventKind.ARTIFACT_RELEASED,
    EventKind.TASK_COMPLETED,
    EventKind.SCHEDULE_VETOED,
    *DECISIONS,
}
_TRIGGERED = {ScheduleReason.MATCH.value, ScheduleReason.BATCH_SIZE.value}


@dataclass(slots=True)
class ForkPlan:
    """A fork to take: the parent's prefix up to ``cut`` (``at``, moved to a unit's end);
    ``state``, the parent's compact fold there; ``inherited``, how many of its events
    the child copies, and ``fork_ts``, the time of the last of them."""

    parent_id: str
    db: DbRef
    at: int
    cut: int
    state: RunState
    program: Path
    inherited: int
    fork_ts: float | None


def plan_fork(db: DbRef, run_id: str, at: int, program: Path | None = None) -> ForkPlan:
    """Check ``at`` and fix the fork point (never inside a transaction)."""
    with open_reader(db) as reader:
        check_at(reader, run_id, at)
        cut = fork_point(reader, run_id, at)
        state, _ = fold_run(reader, run_id, cut, compact=True)
        marks = ", ".join("?" * len(_RUN_KINDS))
        rows = reader.query(
            "SELECT count(*), max(ts) FROM events "
            f"WHERE run_id = ? AND seq <= ? AND kind NOT IN ({marks})",
            (run_id, cut, *(k.value for k in _RUN_KINDS)),
        )
    count, last_ts = rows[0] if rows else (0, None)
    path = program_of(state.program, program, run_id)
    fork_ts = None if last_ts is None else float(str(last_ts))
    return ForkPlan(run_id, db, at, cut, state, path, int(str(count or 0)), fork_ts)


def fork_point(reader: EventReader, run_id: str, at: int) -> int:
    """``at`` moved forward to the end of the transaction it falls in.

    The writer never splits a unit (an agent's outputs, its completion and the
    schedules they cause; or a publish and its schedules), so a fork must not
    either: all events of a unit share one timestamp, and a decision follows
    the artifact that caused it. Read from ``at`` on, a unit at a time; the
    artifacts published up to ``at`` are looked at only if a later decision's
    trigger is not in the unit (a deferred artifact's, decided later).
    """
    rows = reader.query("SELECT max(seq) FROM events WHERE run_id = ? AND seq <= ?", (run_id, at))
    seq = rows[0][0] if rows else None
    found = reader.events_at([int(str(seq))]) if seq is not None else []
    if not found:
        return at
    last = found[-1]
    unit_ts = last.ts if last.kind in _UNIT_KINDS else None
    seen: set[str] = set()  # artifacts published after ``at`` so far
    before: set[str] | None = None  # those published up to ``at``: read when needed
    for e in reader.iter_events(run_id, after=at):
        trigger = _trigger(e)
        same_unit = unit_ts is not None and e.ts == unit_ts and e.kind in _UNIT_KINDS
        if not same_unit:
            if trigger is None:
                break
            if trigger not in seen:
                if before is None:
                    before = _published(reader, run_id, at)
                if trigger not in before:
                    break
        if e.kind is EventKind.ARTIFACT_PUBLISHED:
            seen.add(body_as(e, ArtifactPublished)["id"])
        at = e.seq if e.seq is not None else at
    return at


def _published(reader: EventReader, run_id: str, until: int) -> set[str]:
    return {
        body_as(e, ArtifactPublished)["id"]
        for e in reader.iter_events(run_id, until=until)
        if e.kind is EventKind.ARTIFACT_PUBLISHED
    }


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


def _started(plan: ForkPlan, flock: Flock, model: str) -> Event:
    """The child's ``run.started``: its program and model, its parent and fork point."""
    program = flock.program
    started = RunStarted(
        program=str(program) if program else None,
        program_hash=program_hash(program),
        model=model,
        agents=[a.spec() for a in flock.agents.values()],
        parent_run=plan.state.run_id,
        fork_seq=plan.cut,
        id_root=plan.state.ids_run,
        pid=os.getpid(),
        host=socket.gethostname(),
        version=__version__,
    )
    if flock.once_per_agent:
        started["once_per_agent"] = True
    if flock.max_depth is not None:
        started["max_depth"] = flock.max_depth
    started["inherited"] = plan.inherited
    # The fork point in time, recorded: whoever arms the inherited timers (this
    # process, a worker, a later resume) restarts them relative to the fork.
    started["fork_ts"] = plan.fork_ts
    return make_event(flock.run_id, EventKind.RUN_STARTED, started, time.time())


def _inherited(reader: EventReader, plan: ForkPlan, child: str) -> Iterator[Event]:
    """The parent's events up to the fork point, re-labelled as the child's."""
    for e in reader.iter_events(plan.parent_id, until=plan.cut):
        if e.kind not in _RUN_KINDS:
            yield Event(run_id=child, kind=e.kind, body=e.body, ts=e.ts, v=e.v)


async def write_fork(
    plan: ForkPlan, started: Event, lease: Lease | None = None, chunk: int = COPY_CHUNK
) -> None:
    """The child's ``started`` and its inherited prefix, in one transaction (fenced by
    the child's lease), the parent's events read and written a chunk at a time."""
    writer = await open_store(plan.db).open_writer(fence=lease)
    try:
        with open_reader(plan.db) as reader:
            events = itertools.chain([started], _inherited(reader, plan, started.run_id))
            await append_streamed(writer, events, chunk)
    finally:
        await writer.close()


async def start_fork(flock: Flock, plan: ForkPlan, model: str | None) -> int:
    """Write the child's inherited prefix, then continue it live; tasks re-launched.

    The inherited timers get the time they had left at the fork point, counted
    from the fork's start (both recorded in its ``run.started``, so workers and a
    later resume agree): a fork taken long after its parent does not flush a
    batch early.
    """
    flock.program = plan.program.resolve()
    flock.db_path = plan.db
    chosen = model or plan.state.model or flock.model
    flock.model = chosen
    flock.check_models()
    await write_fork(plan, _started(plan, flock, chosen), flock.lease)
    prepare(flock, _child_state(plan.db, flock), plan.db, chosen, plan.program)
    return await start_resumed(flock, record=False)


def _child_state(db: DbRef, flock: Flock) -> RunState:
    """The child's state as a resume folds it: compact, with the views its pending work
    pins read from the log."""
    state, _ = fold_for_work(db, flock.run_id)
    return state
