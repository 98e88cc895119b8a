"""Run-ownership rules shared by every backend: when a lease may be taken over.

A lease may be taken over when it has expired, or when its process is known
to be dead: same host, and no such pid (or a zombie). A live owner on
another host can only be waited out (or overridden with ``force``).
"""

from __future__ import annotations

import socket

from flock_es.errors import RunOwnedError
from flock_es.log.liveness import pid_alive
from flock_es.log.ports import Lease

__all__ = ["owned_error", "stealable"]


def stealable(current: Lease, now: float) -> bool:
    """Whether a claimant may take ``current`` over without ``force``."""
    if current.expires <= now:
        return True
    return current.host == socket.gethostname() and not pid_alive(current.pid)


def owned_error(current: Lease, now: float) -> RunOwnedError:
    """The one-line refusal naming the owner."""
    left = max(0.0, current.expires - now)
    return RunOwnedError(
        f"run {current.run_id} is owned by {current.describe()} (lease expires in "
        f"{left:.0f}s); wait for it, or pass --force if that process is dead"
    )
