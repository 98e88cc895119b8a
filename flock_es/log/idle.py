"""Work done on CPU nobody else wants: a thread at ``SCHED_IDLE`` the caller hands work to.

A checkpoint job folds the run it checkpoints beside it, on the same cores.
Whatever CPU the fold takes from the run slows it: at nice 19 a job still runs
whenever the scheduler deems it owed time, and a waking run thread waits for it
(workload (b), 100,000 artifacts, 2 cores: 21,000 runs/s beside nice-19 jobs,
23,900 beside jobs at ``SCHED_IDLE``, 27,100 without jobs). Under the idle
policy a waking thread preempts the fold at once.

But the whole job cannot be idle: it reads the log (each page a read transaction,
which keeps the run's writer from restarting its WAL) and stores its links (the
write lock the run's writer waits for, at most ``BUSY_TIMEOUT_MS``), and an idle
thread on a saturated machine may wait seconds for its next slice. Nor can a
thread go back from the idle policy without privilege (``RLIMIT_NICE`` is 0 by
default). So the job's own thread keeps the normal policy (at nice 19) and does
the reads and the writes; only the pure work (folding pages already read) runs
in an ``IdleWorker``, one call at a time, while the caller waits. Neither thread
ever waits for a lock the other holds: the caller hands over before it waits (it
holds no transaction then) and the worker takes no lock but the GIL, which it
gives up when it blocks for its next call.

Example::

    with IdleWorker() as idle:
        page = reader.events(run, after=cursor, limit=1_000)   # this thread
        idle.call(fold_page, page)                             # the idle one
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["IdleWorker", "idle_policy"]

_T = TypeVar("_T")


def idle_policy() -> bool:
    """Put the calling thread under ``SCHED_IDLE`` (Linux: the policy is per thread);
    False where there is none."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        return False
    return True


class IdleWorker:
    """A thread under ``SCHED_IDLE`` that runs the functions handed to it (``call``),
    one at a time, while the caller waits; where there is no idle policy, at the
    caller's priority (it is then only a thread hop per call)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="flock-es-idle", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        idle_policy()
        while (fn := self._calls.get()) is not None:
            try:
                result: tuple[Any, BaseException | None] = (fn(), None)
            except BaseException as exc:  # handed back: the caller raises it
                result = (None, exc)
            self._done.put(result)
            del fn, result  # nothing of the call stays alive with the worker

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in the idle thread; its result (or its exception, raised here)."""
        self._calls.put(lambda: fn(*args))
        value, exc = self._done.get()
        if exc is not None:
            raise exc
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the thread (after the call it runs, if any)."""
        self._calls.put(None)
        with contextlib.suppress(RuntimeError):
            self._thread.join()

    def __enter__(self) -> IdleWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
