"""``flock-es resume``'s work: claim a run, fold it, and go on with its program.

The ``resume`` command runs it once; ``flock-es run`` and ``resume`` on PostgreSQL
run it again in the same process after a lost database (``cli.run_outage``), with
the lease the lost attempt could not give back (``Claim.stale``).

Example::

    done = resume_run(db_path(None), "r-20261201-...", Claim())
    if done is not None:
        finish(done.flock, done.status, t0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the CLI's --help loads this module, and none of these
    from flock_es.domain.events import RunStatus
    from flock_es.log.backends import DbRef
    from flock_es.log.ports import Lease
    from flock_es.projection.state import RunState
    from flock_es.runtime.flock import Flock
    from flock_es.runtime.lifecycle import Ownership

__all__ = [
    "Claim",
    "ResumeOptions",
    "Resumed",
    "hash_warning",
    "nothing_to_resume",
    "resume_run",
    "warn",
]


@dataclass
class Claim:
    """A run's lease across the attempts of one process: the one an attempt could not
    give back (its database was gone), for the next to give back before it claims."""

    stale: Lease | None = None

    @contextmanager
    def owning(self, db: DbRef, run_id: str, force: bool = False) -> Iterator[Ownership]:
        """``with Ownership(...)`` for one attempt: the stale lease given back first, and
        the one this attempt could not give back kept for the next."""
        from flock_es.runtime.lifecycle import Ownership

        owner = Ownership(db, run_id, force=force, stale=self.stale)
        try:
            with owner:
                yield owner
        finally:
            self.stale = owner.stale


@dataclass
class Resumed:
    """A resumed run that ended: its flock and its status."""

    flock: Flock
    status: RunStatus


def warn(msg: str) -> None:
    """One line on stderr, escaped as ``fail`` escapes an error (it may name a program)."""
    from flock_es.domain.printable import printable

    typer.echo(f"flock-es: warning: {printable(msg)}", err=True)


def nothing_to_resume(state: RunState, run_id: str) -> None:
    """Say that ``run_id`` has no work left (and how to retry what failed, if any)."""
    retryable = len(state.retryable_tasks())
    status = state.finished_status or "interrupted"
    if retryable:
        typer.echo(
            f"Run {run_id} is {status}; {retryable} task(s) failed on a provider error "
            f"that may pass: `flock-es resume {run_id} --retry-failed` re-runs them."
        )
        return
    typer.echo(f"Run {run_id} is {status}; nothing to resume.")


def hash_warning(path: Path, recorded: str | None, now: str | None) -> dict[str, str | None]:
    """Warn when the program changed since the run was recorded; both digests."""
    if recorded and now and recorded != now:
        warn(f"{path} changed since the run was recorded (recorded {recorded}, now {now})")
    return {"recorded": recorded, "current": now}


@dataclass
class ResumeOptions:
    """What ``flock-es resume`` (or the run it goes on with) was told."""

    program: Path | None = None
    model: str | None = None
    quiet: bool = False
    sync: str | None = None
    force: bool = False
    retry_failed: bool = False
    concurrency: int = 16  # a shared run's tasks this process executes at once
    max_calls: int | None = None  # ``run --max-concurrent-calls``, kept when it goes on


def resume_run(
    db: DbRef,
    run_id: str,
    claim: Claim,
    options: ResumeOptions | None = None,
    ours: bool = False,
    claimed: Callable[[], None] | None = None,
) -> Resumed | None:
    """Claim ``run_id``, fold it and run it to its end; None (said) if nothing is left.

    ``ours``: the run is this process's own (it lost its database and goes on), so
    its recorded pid being alive is no sign of another owner. ``claimed`` is called
    once the run is claimed and folded, before any work.
    """
    from flock_es.cli.options import durability
    from flock_es.cli.run_driver import run_to_end, share
    from flock_es.runtime.lifecycle import plan_resume, resume
    from flock_es.runtime.program import load_program
    from flock_es.runtime.sharing import is_shared_run

    o = options or ResumeOptions()
    # Owned before the log is even folded: a second resume never sees the same work.
    with claim.owning(db, run_id, force=o.force) as owner:
        shared = is_shared_run(db, run_id)
        # Compact: the resumed run forgets completed tasks, a shared one's too.
        force = o.force or ours
        plan = plan_resume(db, run_id, o.program, force, o.retry_failed, compact=True)
        if plan.nothing_to_do or plan.program is None:
            nothing_to_resume(plan.state, run_id)
            return None
        hash_warning(plan.program, plan.recorded_hash, plan.current_hash)
        prog = load_program(plan.program)
        prog.flock.durability = durability(o.sync)
        if o.max_calls is not None:
            prog.flock.max_concurrent_calls = o.max_calls
        if shared:
            # Workers may hold leases on its tasks: take part like one of them
            # (claiming tasks under leases), so none is executed twice.
            share(prog.flock, no_execute=False, concurrency=o.concurrency, shared=True)
        if claimed is not None:
            claimed()
        resumed = lambda: resume(prog.flock, plan, o.model)  # noqa: E731
        status = run_to_end(prog.flock, resumed, o.quiet, plan.program, owner, seeds=False)
    return Resumed(prog.flock, status)
