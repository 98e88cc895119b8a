"""A live run checkpoints its folded state as it goes (issue 14).

``Checkpoints`` counts the run's committed events (a kernel listener: one
``len`` per commit) and, once ``FIRST_CHECKPOINT`` of them lie past the run's
latest snapshot and then each time the run has grown by a factor of ``GROWTH``
since the last checkpoint (by at least ``SNAPSHOT_EVERY`` events, at most
``STEP_MAX``), asks its job for one: ``flock_es.log.snapshot_job --serve``, a
separate process at the lowest priority, started at the first checkpoint and
kept for the run (a line on its standard input per checkpoint; a new one if it
ended). The job folds the committed log compactly, from the latest snapshot's
compact state when it starts and from where its last checkpoint left off after
that, and stores the next link of the chain (``flock_es.projection.snapshot``):
its memory is that of what pending work holds, not of the run's whole state, and
its work adds up to one compact fold of the run, off the run's threads. One job,
not one per checkpoint: each paid an interpreter, its imports and a decode of
the latest link, beside a run whose threads any CPU it takes slows (issue 14).
Past its first checkpoint, the run so asks for a snapshot at most about a third
of the run, and at most ``STEP_MAX`` events, behind; the job folds on spare CPU
only and can fall further behind (a run committing faster than it folds, a busy
machine), and ``resume`` after a crash or ``show --at`` then fold the rest from
the log.

A snapshot is a cache: a job that fails, or that ``close`` stops, costs nothing
but the shortcut.

Example::

    checkpoints = Checkpoints(db, run_id, events=0)
    kernel.listeners.append(checkpoints.committed)
    ...
    checkpoints.stop()      # at close: a job still folding is stopped
"""

from __future__ import annotations

import contextlib
import functools
import os
import site
import subprocess
import sys
from pathlib import Path

from flock_es.domain.events import Event
from flock_es.log.backends import DbRef
from flock_es.log.snapshot_job import DB_ENV, DB_FROM_ENV, PARENT_ENV, SERVE, lower_priority
from flock_es.projection.snapshot import SNAPSHOT_EVERY

__all__ = ["FIRST_CHECKPOINT", "GROWTH", "JOB", "STEP_MAX", "Checkpoints", "job_env"]

JOB = "flock_es.log.snapshot_job"

GROWTH = 1.5
"""A new checkpoint once the run has this many times the events of the last one:
few jobs (each is a process to start) while the run is short."""
STEP_MAX = 10 * SNAPSHOT_EVERY
"""The most events between two checkpoints of a long run: a job folds only the events
since the last, so the spacing is what a crash leaves to fold again."""
FIRST_CHECKPOINT = 5 * SNAPSHOT_EVERY
"""The events a live run commits past its latest snapshot before it starts its job.

Fewer are folded from the log in under a second (``show --at`` the last event of a
98,800-event run without a snapshot: 0.8 s in all), and a job is dear beside a
short run: its interpreter, imports and fold took 0.3 CPU-s beside the 0.6 to 0.9
of a 52,000-event run (workload (b), 2,000 artifacts), on the cores the run needed
(31,000 agent runs/s beside its job, 37,000 without one, five pairs on two cores:
issue 14)."""


def job_env(db: str) -> dict[str, str]:
    """The environment of a job of this process's run on ``db``.

    The job runs with ``-P``: ``python -m`` would otherwise put its working folder
    first on its path, and a run started in a folder holding another flock-es
    checkout would have its job fold with that code (and perhaps another schema).
    So the folder this process's ``flock_es`` comes from goes first on the job's
    ``PYTHONPATH`` instead: the job imports the same code as the run, however the
    run found it. Unless that folder is one of the interpreter's site directories
    (a plain install): the job finds it there anyway, and first on the path it
    would let a package installed there shadow the standard library.
    """
    env = {**os.environ, DB_ENV: db, PARENT_ENV: str(os.getpid())}
    root = _root()
    if root not in _site_dirs():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return env


def _root() -> str:
    """The folder this process's ``flock_es`` package is in."""
    return str(Path(__file__).resolve().parents[2])


@functools.cache
def _site_dirs() -> frozenset[str]:
    found = [*site.getsitepackages(), site.getusersitepackages()]
    return frozenset(str(Path(d).resolve()) for d in found)


class Checkpoints:
    """Keeps one run's checkpoint job and asks it for a checkpoint as the run's committed
    events grow."""

    def __init__(
        self,
        db: DbRef,
        run_id: str,
        events: int = 0,
        every: int = SNAPSHOT_EVERY,
        lag: int = 0,
        first: int | None = None,
    ) -> None:
        """``lag``: how many of the run's ``events`` lie past its latest snapshot (a
        resume that folded that many); ``first``: how many may lie past it before the
        first checkpoint (``every`` if None; a live run's is ``FIRST_CHECKPOINT``). At
        ``first`` or more, the first commit starts a job, so the next resume or
        ``show --at`` does not fold them again."""
        self.db = str(db)
        self.run_id = run_id
        self.events = events  # committed events of the run, as far as this process knows
        self.every = every
        self.next_at = events + max((every if first is None else first) - lag, 0)
        self.job: subprocess.Popen[bytes] | None = None
        self.started = 0

    def committed(self, events: list[Event]) -> None:
        """Kernel listener: count the unit; ask for a checkpoint when the run has grown
        enough."""
        self.events += len(events)
        if self.events >= self.next_at:
            self._request()

    def step(self) -> int:
        """Events from now to the next checkpoint: the run grown by ``GROWTH``, at least
        ``every`` and at most ``STEP_MAX`` events on."""
        return min(max(self.every, int(self.events * (GROWTH - 1))), max(STEP_MAX, self.every))

    def _request(self) -> None:
        """One checkpoint from the run's job (started if it has none, or it ended): a
        line on its input, which waits there while the job folds."""
        self.next_at = self.events + self.step()
        if not self._ask():
            self._start()
            self._ask()

    def _ask(self) -> bool:
        """A line on the job's input (one checkpoint); False if no live job took it."""
        job = self.job
        if job is None or job.stdin is None or job.poll() is not None:
            return False
        try:
            os.write(job.stdin.fileno(), b"\n")
        except BlockingIOError:  # a full pipe: checkpoints enough are asked for
            pass
        except OSError:  # it ended meanwhile
            return False
        return True

    def _start(self) -> None:
        self._close_input()
        try:
            self.job = subprocess.Popen(
                # The database goes in the environment, not argv: a URL's password
                # would show in ``ps`` to every user of the machine. ``-P``: see job_env.
                [sys.executable, "-P", "-m", JOB, DB_FROM_ENV, self.run_id, str(self.every), SERVE],
                # The job stops when this process ends, however it ends (SIGKILL too:
                # its input ends then, as when ``stop`` closes it).
                env=job_env(self.db),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.started += 1
        except OSError:  # no process to spare: the run goes on without this checkpoint
            self.job = None
            return
        # At once, not from the job once it is up: its start-up is CPU too. Popen
        # returns once the job has exec'd, so it has run for microseconds at most.
        lower_priority(self.job.pid)
        assert self.job.stdin is not None
        fd = self.job.stdin.fileno()
        with contextlib.suppress(AttributeError, OSError):  # (Windows before 3.12: none)
            os.set_blocking(fd, False)  # the run's loop never waits for its job

    def _close_input(self) -> None:
        job = self.job
        if job is not None and job.stdin is not None:
            with contextlib.suppress(OSError):
                job.stdin.close()

    def stop(self) -> None:
        """Stop the job (the run is closing), folding or not, and reap it."""
        self._close_input()
        job, self.job = self.job, None
        if job is None or job.poll() is not None:
            return
        job.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(timeout=5)
            return
        job.kill()
        job.wait()
