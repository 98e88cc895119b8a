"""How far a long command has come, on a terminal: one line on stderr, rewritten in place.

``export`` and ``import`` of a large run, and ``show --json`` or ``--payloads`` of
one, read millions of events (a 2.6M-event run: 13 s to export, 29 s to fold
for ``show --json``, then 9 s to write its entries when they go to a file). On
a terminal, stderr shows the phase and its count; the line is cleared before
the command prints its result. In a pipe, a log or a terminal that cannot redraw
a line (``TERM=dumb``) nothing is shown.

Example::

    with phase_line() as line:            # None unless stderr is a terminal
        export_to_file(reader, run_id, path, line)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from flock_es.cli.progress import redrawable, stream_kind

__all__ = ["PhaseLine", "phase_line"]


class PhaseLine:
    """``line(phase, done, total)`` rewrites the line; ``clear()`` removes it."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, phase: str, done: int, total: int | None, unit: str = "events") -> None:
        of = f" of {total:,}" if total is not None else ""
        sys.stderr.write(f"\r\033[K{phase} {done:,}{of} {unit}")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


@contextlib.contextmanager
def phase_line(streams_to_stdout: bool = False) -> Iterator[PhaseLine | None]:
    """A ``PhaseLine`` if stderr is a terminal (cleared at the end, error or not), else
    None. ``streams_to_stdout``: the command prints as it reads, so not if stdout is
    that terminal too (the line would land in the middle of what it prints)."""
    shown = redrawable(sys.stderr)  # not TERM=dumb: it would print ESC [ K as it is
    if streams_to_stdout and stream_kind(sys.stdout) == "tty":
        shown = False
    line = PhaseLine() if shown else None
    try:
        yield line
    finally:
        if line is not None:
            line.clear()  # the result, or the error, follows on a clean line
