"""Resume and fork: continue a recorded run, or branch a new one off it.

Both start from the fold of the log. Resume hands the folded state to the
program's ``Flock`` (which then skips ``run.started``), records ``run.resumed``
and re-launches every task that was scheduled or started but not finished;
batch timers are re-armed from their recorded deadlines. Model calls already
recorded for a task are served from the record by ``(task id, call index)``.

A fork (``runtime/fork.py``) writes a new run from the parent's events up to
the fork point, then continues it the same way.

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

from flock_es.domain import ids
from flock_es.domain.events import (
    EventKind,
    RunResumed,
    RunStatus,
    make_event,
)
from flock_es.errors import AtOutOfRange, ProgramError
from flock_es.log.backends import DbRef, open_reader

# Re-exported: live_status and pid_alive moved down to the log layer so readers
# (cli show/runs, the TUI) need not import the runtime.
from flock_es.log.liveness import live_status as live_status
from flock_es.log.liveness import pid_alive as pid_alive
from flock_es.log.ports import EventReader
from flock_es.log.snapshots import fold_run
from flock_es.models.limiter import seed_limits
from flock_es.projection.fold_compact import forget_spans
from flock_es.projection.state import RunState
from flock_es.runtime.artifacts import RunArtifacts
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.flock import Flock


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


def fold_for_work(db: DbRef, run_id: str) -> tuple[RunState, int]:
    """The state of ``run_id`` as the work that continues it needs it: compact, folded
    from its latest snapshot, with the views its pending work pins read from the log
    (``RunArtifacts.hold_pinned``); also how many events were folded past the snapshot.
    A resume, a fork's child and a worker joining a shared run start from it, so their
    memory is that of the open work, not of the run so far (issue 14).

    Example: ``state, folded = fold_for_work("data/flock-es.db", "r-2026...")``.
    """
    with open_reader(db) as reader:
        state, folded = fold_run(reader, run_id, compact=True)
    board = BoardSource(db, run_id)
    try:
        RunArtifacts(state, board).hold_pinned()
    finally:
        board.close()
    return state, folded


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
    forget_spans(engine.state)
    # The model's rate limit as the run last knew it, not a first wave of calls again.
    seed_limits(engine.state.limiters, time.time())
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


def program_of(recorded: str | None, given: Path | None, run_id: str) -> Path:
    """The program to load for ``run_id``: ``given``, else the one the run recorded."""
    if given is not None:
        return given
    if not recorded:
        raise ProgramError(f"run {run_id} recorded no program file; pass --program PROGRAM.py")
    path = Path(recorded)
    if not path.is_file():
        raise ProgramError(
            f"the program of run {run_id} ({recorded}) no longer exists; pass --program PROGRAM.py"
        )
    return path
