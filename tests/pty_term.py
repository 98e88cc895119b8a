"""A real pseudo-terminal for CLI tests: open one of a given size, and read what
the child writes to it until it closes, exits or time runs out.

Example::

    master, slave = open_terminal(rows=40, cols=100)
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, env=terminal_env())
    os.close(slave)
    out = b"".join(read_terminal(master, proc, seconds=60))
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

from tests.conftest import cli_env

__all__ = ["open_terminal", "read_terminal", "terminal_env"]


def open_terminal(rows: int, cols: int) -> tuple[int, int]:
    """A pseudo-terminal (master, slave) of ``cols`` x ``rows``."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return master, slave


def terminal_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The CLI's test environment as on a colour terminal (the size comes from the pty)."""
    env = cli_env({"TERM": "xterm-256color", **(extra or {})})
    env.pop("COLUMNS", None)
    return env


def read_terminal(master: int, proc: subprocess.Popen[bytes], seconds: float) -> Iterator[bytes]:
    """What ``proc`` writes to the terminal, chunk by chunk (``b""`` when nothing came in
    the last 0.1 s, so the caller can act between reads), until the terminal closes, the
    process exits with nothing left to read, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            yield chunk
        elif proc.poll() is not None:
            return
        else:
            yield b""
