"""Lease rules shared by every backend: when a lease may be taken over.

A lease, of a run (``owners``) or of a task (``task_leases``), may be taken
over when it has expired, or when its holder is known to be dead: on this
host, and no such pid (or a zombie). A live holder on another host can only
be waited out (or, for a run, overridden with ``force``).

A task lease's holder is a worker id, ``host:pid:n``: it names the process,
so a worker can tell that a worker of its own machine is gone. A worker of its
own process is gone once closed (``worker_ended``): a run that lost its database
and goes on in the same process takes its lost worker's tasks over at once.

Example::

    holder_gone("build-7", 4242)    # True once process 4242 on this host "build-7" is gone
    gone_workers(["build-7:4242:0", "other:17:0"])   # ["build-7:4242:0"] then
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterable

from flock_es.errors import RunOwnedError
from flock_es.log.liveness import pid_alive
from flock_es.log.ports import Lease

__all__ = [
    "gone_workers",
    "holder_gone",
    "local_worker_range",
    "new_worker_id",
    "owned_error",
    "stealable",
    "worker_ended",
]

_counter = itertools.count()
_live: set[str] = set()  # the worker ids of this process not yet ended


def holder_gone(host: str, pid: int) -> bool:
    """Whether the holder ``pid`` on ``host`` is known dead (checkable on this host only)."""
    return host == socket.gethostname() and not pid_alive(pid)


def stealable(current: Lease, now: float) -> bool:
    """Whether a claimant may take ``current`` over without ``force``."""
    return current.expires <= now or holder_gone(current.host, current.pid)


def owned_error(current: Lease, now: float) -> RunOwnedError:
    """The one-line refusal naming the owner."""
    left = max(0.0, current.expires - now)
    return RunOwnedError(
        f"run {current.run_id} is owned by {current.describe()} (lease expires in "
        f"{left:.0f}s); wait for it, or pass --force if that process is dead"
    )


def new_worker_id() -> str:
    """``host:pid:n``: unique among live workers, shown per task in the TUI. Live
    until ``worker_ended``: the ids of this process's that ended are gone workers."""
    worker = f"{socket.gethostname()}:{os.getpid()}:{next(_counter)}"
    _live.add(worker)
    return worker


def worker_ended(worker: str) -> None:
    """``worker`` (an id of this process's) is closed: the leases it could not give
    back (its database was gone) are a gone worker's, taken over at once by the next
    worker of this process (``gone_workers``), not after they expire."""
    _live.discard(worker)


def local_worker_range() -> tuple[str, str]:
    """Bounds (``>=``, ``<``) of the worker ids of this host, for an indexed range scan."""
    host = socket.gethostname()
    return f"{host}:", f"{host};"  # ';' sorts right after ':'


def gone_workers(workers: Iterable[str]) -> list[str]:
    """The worker ids among ``workers`` whose process is known dead (see ``holder_gone``),
    and those of this process that ended (``worker_ended``)."""
    me = f"{socket.gethostname()}:{os.getpid()}:"
    return [w for w in workers if (w.startswith(me) and w not in _live) or _dead(w)]


def _dead(worker: str) -> bool:
    """Whether ``worker``'s process is known dead (``holder_gone``)."""
    parts = worker.rsplit(":", 2)  # host:pid:n
    return len(parts) == 3 and parts[1].isdigit() and holder_gone(parts[0], int(parts[1]))
