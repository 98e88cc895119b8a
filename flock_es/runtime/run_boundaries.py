"""What opens and closes a run's record: the ``run.started`` event (the program,
its hash and the agent table, so a reader needs no user code) and the final
status ``close()`` records in ``run.finished``.

Example::

    event = run_started_event(run_id, program_path(None), "offline", agents)
    ending = closing_status(state, in_flight=False, gave_up_waiting=False)
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flock_es._version import __version__
from flock_es.domain import ids
from flock_es.domain.events import Event, EventKind, RunFinished, RunStarted, RunStatus, make_event
from flock_es.projection.state import RunState
from flock_es.runtime.agent import Agent

__all__ = ["Closing", "closing_status", "program_path", "run_started_event"]


def program_path(declared: Path | None) -> Path | None:
    """The program file of this run: the one declared, else ``__main__``'s file."""
    if declared is not None:
        return declared
    main = sys.modules.get("__main__")
    f = getattr(main, "__file__", None)
    return Path(f).resolve() if f else None


def run_started_event(
    run_id: str,
    program: Path | None,
    model: str,
    agents: Iterable[Agent],
    *,
    parent_run: str | None = None,
    fork_seq: int | None = None,
    max_agent_iterations: int | None = None,
    max_depth: int | None = None,
    once_per_agent: bool = False,
    max_concurrent_calls: int | None = None,
) -> Event:
    """The ``run.started`` event of a new run (or a fork) of ``program``."""
    body = RunStarted(
        program=str(program) if program else None,
        program_hash=ids.content_hash(program.read_bytes())
        if program and program.is_file()
        else None,
        model=model,
        agents=[a.spec() for a in agents],
        parent_run=parent_run,
        fork_seq=fork_seq,
        pid=os.getpid(),
        host=socket.gethostname(),
        version=__version__,
        max_agent_iterations=max_agent_iterations,
    )
    if once_per_agent:  # absent otherwise, as in logs written before the option
        body["once_per_agent"] = True
    if max_depth is not None:  # absent: no limit, and no depths recorded
        body["max_depth"] = max_depth
    if max_concurrent_calls is not None:  # absent: no cap
        body["max_concurrent_calls"] = max_concurrent_calls
    return make_event(run_id, EventKind.RUN_STARTED, body, time.time())


@dataclass(frozen=True)
class Closing:
    """How a run closes: its status, the reason recorded, and whether the tasks
    still in flight are cancelled first (the run is interrupted, resume continues it)."""

    status: RunStatus
    reason: str | None
    failed_tasks: list[str]
    cancel_in_flight: bool

    def event(self, run_id: str) -> Event:
        """The ``run.finished`` event that records this closing."""
        body = RunFinished(status=self.status, failed_tasks=self.failed_tasks, reason=self.reason)
        return make_event(run_id, EventKind.RUN_FINISHED, body, time.time())


def closing_status(
    state: RunState,
    *,
    in_flight: bool,
    gave_up_waiting: bool,
    status: RunStatus | None = None,
    reason: str | None = None,
) -> Closing:
    """The status ``close()`` records: ``status`` when the caller names one; else
    interrupted (work pending, or only provider errors that may pass), failed, or
    completed."""
    failed = [t.id for t in state.failed_tasks()]
    # Tasks still in flight (an invoke that timed out), or armed timers after
    # run_until_idle(timeout=) gave up: the run is not over, resume continues it.
    # Timers armed at a plain close() keep the earlier rule: completed, and resume
    # still finishes them (tests/test_resume_timers.py).
    unfinished = bool(state.pending_tasks()) or bool(state.undecided) or gave_up_waiting
    if status is None and in_flight and unfinished:
        reason = reason or "closed with work pending; `flock-es resume` continues it"
        return Closing(RunStatus.INTERRUPTED, reason, failed, cancel_in_flight=True)
    if status is None:
        status = RunStatus.FAILED if failed else RunStatus.COMPLETED
        if failed and len(state.retryable_tasks()) == len(failed):
            # Only provider errors that may pass (an outage, a rate limit): the run is
            # interrupted, not failed; ``resume --retry-failed`` continues it.
            status = RunStatus.INTERRUPTED
            reason = reason or (
                f"{len(failed)} task(s) failed on provider errors that may pass; "
                "resume with --retry-failed"
            )
    return Closing(status, reason, failed, cancel_in_flight=False)
