"""Driving a run of this process to its end: the progress, the summary, the exit code.

``run``, ``resume`` and ``fork`` drive their run with ``run_to_end`` and end with
``finish``; ``share`` opens the run to ``flock-es worker`` processes.

Example::

    status = run_to_end(flock, lambda: call_main(program), quiet=False, program=path)
    finish(flock, status, t0)
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import typer

from flock_es.cli.closed_stdout import keep_running
from flock_es.cli.progress import Progress, print_summary, summary_lines
from flock_es.domain.events import RunStatus
from flock_es.errors import CommitFailed, DatabaseError, ExitCode, ProgramError, UserError
from flock_es.log.backends import describe_db, is_postgres
from flock_es.runtime.flock import Flock
from flock_es.runtime.gc_policy import RUN_THRESHOLDS
from flock_es.runtime.lifecycle import Ownership, drive
from flock_es.runtime.program import describe_exception

__all__ = ["Ended", "finish", "run_to_end", "share", "tune_gc"]

Ended = tuple[Flock, RunStatus] | None
"""A run this process drove to its end and its status; None: nothing was left to do."""


def tune_gc() -> None:
    """Keep the garbage collector from rescanning a run's state over and over.

    A busy run holds hundreds of thousands of live objects (its folded state);
    with the default thresholds the collector rescans them so often that it
    takes about half of the time of a run of quick agents (bench/bench_core.py
    measures both). The CLI owns its process, so it freezes what is loaded and
    collects less often; a library user's process is left alone.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*RUN_THRESHOLDS)  # what fewer_collections() sets for a library run


def run_to_end(
    flock: Flock,
    body: Callable[[], Awaitable[object]],
    quiet: bool,
    program: Path,
    owner: Ownership | None = None,
    seeds: bool = True,
) -> RunStatus:
    """Drive ``body()`` and the run to the end with live progress; user-code errors
    become one-line ``ProgramError``s naming ``program``. ``seeds``: ``body()`` is
    ``main()`` (``drive``'s)."""
    tune_gc()
    keep_running()
    progress = Progress(lambda: flock.state, quiet=quiet)
    flock.add_listener(progress.on_events)

    async def go() -> RunStatus:
        try:
            with progress:
                return await drive(flock, body(), owner, seeds)
        except UserError:
            raise
        except CommitFailed as exc:  # the log refused a commit: not the program's fault
            raise DatabaseError(str(exc)) from None
        except Exception as exc:
            raise ProgramError(describe_exception(program, exc)) from None

    return asyncio.run(go())


def finish(flock: Flock, status: RunStatus, t0: float) -> None:
    """Print the summary; exit ``INTERRUPTED`` or ``RUN_FAILED`` when the run says so.

    A run that stopped only because of provider errors that may pass (an
    outage) is interrupted, not failed: ``RUN_FAILED``, with the command that retries.
    """
    state = flock.state
    wall = time.time() - t0
    db = describe_db(flock.db_path)
    print_summary(summary_lines(state, status.value, wall, db, since=t0))
    retryable = state.retryable_tasks()
    if status is RunStatus.INTERRUPTED and retryable and not state.pending_tasks():
        typer.echo(
            f"{len(retryable)} task(s) failed on provider errors that may pass; "
            f"`flock-es resume {flock.run_id} --retry-failed` re-runs them.",
            err=True,
        )
        raise typer.Exit(ExitCode.RUN_FAILED)
    if status is RunStatus.INTERRUPTED:
        raise typer.Exit(ExitCode.INTERRUPTED)
    if status is RunStatus.FAILED:
        raise typer.Exit(ExitCode.RUN_FAILED)


def share(flock: Flock, no_execute: bool, concurrency: int, shared: bool = False) -> None:
    """Run through the shared log so `flock-es worker` processes can take part: always
    on PostgreSQL; on a SQLite file with ``--share`` or ``--no-execute`` (a run one
    process drives alone keeps the faster single-writer path)."""
    if not (is_postgres(flock.db_path) or shared or no_execute):
        return
    if concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    from flock_es.runtime.sharing import ShareRun

    flock.share = ShareRun(
        flock, str(flock.db_path), execute=not no_execute, concurrency=concurrency
    )
