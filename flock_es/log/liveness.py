"""Whether a run nobody closed is still running: its recorded process, checked.

A reader (``flock-es runs``/``show``, the TUI) learns from ``run.started`` and
``run.resumed`` which pid on which host owns a run. This module answers "is
that process alive", so readers never need the runtime to show a status.

Example::

    live_status(None, pid=4242, host=socket.gethostname(), pending=True)
    # "interrupted" once process 4242 is gone, "running" while it lives
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from flock_es.domain.events import RunStatus

__all__ = ["live_status", "pid_alive"]


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def live_status(
    status: str | None,
    pid: int | None,
    host: str | None,
    pending: bool = True,
    failed: bool = False,
) -> str:
    """The status to show for a run with no ``run.finished`` (or a finished one).

    Its process still alive: "running". Gone with work left (``pending``):
    "interrupted", it crashed or was killed. Gone with nothing left: it ended
    without closing the run (a script run as ``python program.py`` does that),
    so "completed", or "failed" if a task failed. A run on another host, or
    with no recorded pid, cannot be checked and stays "running".
    """
    if status and status != RunStatus.RUNNING.value:
        return status
    if pid is None or (host is not None and host != socket.gethostname()):
        return RunStatus.RUNNING.value
    if pid_alive(pid):
        return RunStatus.RUNNING.value
    if pending:
        return RunStatus.INTERRUPTED.value
    return RunStatus.FAILED.value if failed else RunStatus.COMPLETED.value
