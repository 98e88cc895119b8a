"""The life of a run as runtime API: own it, drive it to the end, resume or fork it.

The CLI parses arguments, calls these and renders what they return; a
program or a test can call them the same way.

* ``Ownership``: the run's lease in the log, claimed before any work,
  heart-beaten while the run goes on, released at the end.
* ``drive``: run a body (``main()``, a resume, a fork) and then the run until
  idle; SIGINT/SIGTERM stop it cleanly as ``interrupted`` (resumable).
* ``plan_resume``/``resume``: fold the run, pick its program, and
  check every recorded model call a re-run task would be served against the
  request the program makes now, before anything runs or is paid for.
* ``plan_fork``/``start_fork`` (``runtime/fork.py``): a new run from the state of
  another at a seq, with its pending timers restarted relative to the fork.

Example::

    with Ownership(db, run_id) as owner:
        plan = plan_resume(db, run_id)
        program = load_program(plan.program)
        status = asyncio.run(drive(program.flock, resume(program.flock, plan, None), owner))
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flock_es.domain.events import RunStatus
from flock_es.errors import (
    CommitFailed,
    DatabaseError,
    DiskFullError,
    RunLostDatabase,
    RunOwnedError,
    UserError,
    database_may_come_back,
)
from flock_es.log.backends import DbRef, open_reader
from flock_es.log.ports import Lease, open_store
from flock_es.log.salvaged_answers import salvaged_answers
from flock_es.log.snapshots import fold_run, save_snapshot
from flock_es.projection.fold import compacted
from flock_es.projection.state import RunState
from flock_es.runtime.flock import Flock
from flock_es.runtime.fork import ForkPlan, plan_fork, start_fork
from flock_es.runtime.preflight import check_recorded_calls, pending_requests
from flock_es.runtime.resume import (
    fold_for_work,
    live_status,
    nothing_to_resume,
    prepare,
    program_hash,
    program_of,
    start_resumed,
)

__all__ = [
    "ForkPlan",
    "Ownership",
    "ResumePlan",
    "drive",
    "plan_fork",
    "plan_resume",
    "program_of",
    "resume",
    "start_fork",
]


class Ownership:
    """The lease on one run: ``with Ownership(db, run_id):`` around all its work."""

    def __init__(
        self, db: DbRef, run_id: str, force: bool = False, stale: Lease | None = None
    ) -> None:
        """``stale``: a lease of this process's on the run that it could not give back
        (its database was gone): given back first, then the run is claimed anew."""
        self.store = open_store(db)
        self.run_id = run_id
        self.force = force
        self.lease: Lease | None = None
        # The lease ``__exit__`` could not give back: the database was gone.
        self.stale = stale
        # Called when a heartbeat finds the run taken over (drive stops the run).
        self.on_lost: Callable[[RunOwnedError], None] | None = None

    def __enter__(self) -> Ownership:
        # The store names the database in one line for any fault (full, read-only, damaged).
        if self.stale is not None:
            # This process's own: it is alive, so the lease would hold until it expires.
            self.store.release(self.stale)
            self.stale = None
        self.lease = self.store.claim(self.run_id, force=self.force)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lease is not None:
            try:
                self.store.release(self.lease)
            except Exception:
                self.stale = self.lease
            self.lease = None

    async def keep(self) -> None:
        """Renew the lease until cancelled (a third of its length at a time)."""
        while self.lease is not None:
            await asyncio.sleep(max(0.05, self.lease.lease_seconds / 3))
            if self.lease is None:
                return
            try:
                self.lease = await asyncio.to_thread(self.store.heartbeat, self.lease)
            except RunOwnedError as exc:
                # The writer is fenced with the lease, so nothing more is committed;
                # stop the work too, so no model call is paid that cannot be recorded.
                self.lease = None
                if self.on_lost is not None:
                    self.on_lost(exc)
                return
            except DatabaseError:
                continue  # a busy or full disk: the writer reports it; try again later


async def drive(
    flock: Flock, body: Awaitable[Any] | None, owner: Ownership | None = None, seeds: bool = True
) -> RunStatus:
    """Await ``body``, run until idle, close; SIGINT/SIGTERM close it ``interrupted``.

    ``seeds``: ``body`` is ``main()`` publishing the run's seeds (not a resume's start),
    so a database lost while it runs loses the seeds it had yet to publish.

    A user error raised on the way (a changed recorded call, a bad publish)
    also closes the run ``interrupted``: nothing is lost and it stays resumable.
    """
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    stopped: list[str] = []

    def stop(signame: str) -> None:
        if not stopped:
            stopped.append(signame)
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop, sig.name)
    keeper = None
    if owner is not None:
        flock.lease = owner.lease  # every commit checks the run is still ours
        owner.on_lost = lambda exc: stop(str(exc))
        keeper = asyncio.create_task(owner.keep(), name="flock-es:lease")
    seeding = body is not None and seeds
    in_main = seeding  # main() has not returned (publishing, or waiting in it)
    try:
        if body is not None:
            await body
        seeding = in_main = False
        if not flock.stopped_waiting:  # the program chose to stop waiting: leave it resumable
            await flock.run_until_idle()
        return await flock.close()
    except asyncio.CancelledError:
        if not stopped:
            raise
        if flock.started:
            await flock.engine.cancel_all()
        return await flock.close(RunStatus.INTERRUPTED, reason=stopped[0])
    except BaseException as exc:
        cause = _cause(exc)
        if flock.started and not isinstance(exc, KeyboardInterrupt):
            await flock.engine.cancel_all()
            status = RunStatus.INTERRUPTED if isinstance(cause, UserError) else RunStatus.FAILED
            # A shared run that lost its database stays open, though it may be back at
            # once (a failover): 'interrupted' would stop its workers, who go on
            # without this process, and a later resume closes it.
            record = not (flock.share is not None and _lost_database(cause))
            await flock.close(status, reason=f"{type(cause).__name__}: {cause}", record=record)
        # main() that waited for its run (run_until_idle) had published its seeds.
        seeding = seeding and not flock.failed_while_waiting
        if seeding and isinstance(cause, DiskFullError):
            raise cause.while_seeding() from None
        if flock.started and _lost_database(cause):
            line = _how_to_go_on(str(cause), flock.run_id, seeding)
            raise RunLostDatabase(line, flock.run_id, str(cause), seeding, in_main) from None
        if cause is not exc:
            raise cause from None
        raise
    finally:
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def _lost_database(cause: BaseException) -> bool:
    """A database that may come back (a connection, a server), not a full disk (which
    says how to go on itself) or a damaged file."""
    return database_may_come_back(cause) and not isinstance(cause, DiskFullError)


def _how_to_go_on(error: str, run_id: str, seeding: bool) -> str:
    """The one line of a run that lost its database: what happened, and how to finish."""
    then = (
        "finishes the work already published (not the seeds main() had yet to publish)"
        if seeding
        else "finishes it"
    )
    back = f"once the database is back, `flock-es resume {run_id}` {then}"
    return f"{error}; run {run_id} stopped: {back}"


def _cause(exc: BaseException) -> BaseException:
    """What stopped the run: for a commit that failed on what the user can fix (a full
    disk, a lost lease), that error, which says so, and not the ``CommitFailed`` the
    next call of the run (a publish, a wait) raised for it."""
    if isinstance(exc, CommitFailed) and isinstance(exc.__cause__, UserError):
        return exc.__cause__
    return exc


# --- resume -------------------------------------------------------------------


@dataclass(slots=True)
class ResumePlan:
    """What ``resume`` found: the folded run and the program to continue it with."""

    run_id: str
    db: DbRef
    state: RunState
    program: Path | None
    recorded_hash: str | None
    current_hash: str | None
    nothing_to_do: bool = False
    # Also re-run tasks that failed on a provider error that may pass.
    retry_failed: bool = False
    # Events folded past the run's latest snapshot: the resumed run checkpoints
    # as soon as it starts when they are many (its next crash folds less).
    folded: int = 0

    @property
    def program_changed(self) -> bool:
        return bool(self.recorded_hash and self.current_hash) and (
            self.recorded_hash != self.current_hash
        )


def plan_resume(
    db: DbRef,
    run_id: str,
    program: Path | None = None,
    force: bool = False,
    retry_failed: bool = False,
    compact: bool = False,
) -> ResumePlan:
    """Fold ``run_id`` (take its ``Ownership`` first) and decide what resuming it means.

    ``compact`` (``flock-es resume``'s, shared runs' too): the fold keeps only what
    the open work needs from its latest snapshot on (``resume.fold_for_work``); else
    the whole state is folded and stored as a snapshot for the next resume or
    ``show --at``.
    """
    if compact:  # the views of deferred artifacts decided into pending work: the log's
        state, folded = fold_for_work(db, run_id)
    else:
        with open_reader(db) as reader:
            state, folded = fold_run(reader, run_id)
        # The next resume or ``show --at`` starts here rather than where this fold did.
        save_snapshot(open_store(db), state, folded)
    if nothing_to_resume(state, retry_failed):
        return ResumePlan(run_id, db, state, None, state.program_hash, None, nothing_to_do=True)
    alive = live_status(None, state.pid, state.host) == RunStatus.RUNNING.value
    if state.finished_status is None and alive and not force:
        raise UserError(
            f"run {run_id} is still running (pid {state.pid} on {state.host}); stop it "
            "first, or pass --force if that process is not flock-es"
        )
    path = program_of(state.program, program, run_id)
    return ResumePlan(
        run_id,
        db,
        state,
        path,
        state.program_hash,
        program_hash(path),
        retry_failed=retry_failed,
        folded=folded,
    )


async def resume(flock: Flock, plan: ResumePlan, model: str | None) -> int:
    """Continue the run with the loaded program; returns the tasks re-launched.

    Raises ``ProgramChanged`` (one line naming the agent, the task, what
    changed, and the fork to take instead) before anything runs or is paid,
    if a recorded call would answer a request the program no longer makes.
    """
    assert plan.program is not None
    with open_reader(plan.db) as reader:
        requests = pending_requests(reader, plan.state, plan.retry_failed)
    prepare(flock, plan.state, plan.db, model, plan.program)
    flock.snapshot_lag = plan.folded
    await check_recorded_calls(flock, plan.state, requests)
    # Only what the open work needs from here on: completed tasks are forgotten, so the
    # resumed run's memory does not grow with the tasks it completes (issue 14).
    compacted(plan.state)
    # Opened last: a refusal above leaves no connection to close.
    flock.continue_from(plan.state, requests, salvaged=salvaged_answers(plan.db, plan.run_id))
    return await start_resumed(flock, retry_failed=plan.retry_failed)
