"""The terminal the monitor needs, checked before Textual starts.

This module imports neither Textual nor anything above ``flock_es.errors``,
so ``flock-es tui`` can refuse a pipe or a tiny terminal with one line and
without paying for the Textual import.

Example::

    from flock_es.tui.terminal import check_terminal
    check_terminal()   # raises UserError on a pipe or a 60x20 terminal
"""

from __future__ import annotations

import os
import sys

from flock_es.errors import UserError

__all__ = ["MIN_HEIGHT", "MIN_WIDTH", "check_terminal"]

MIN_WIDTH = 80
MIN_HEIGHT = 24


def check_terminal() -> None:
    """Raise UserError unless the terminal is at least MIN_WIDTH x MIN_HEIGHT.

    Textual reads keys from stdin and draws on stderr, so those are the two
    that must be a terminal.
    """
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UserError("flock-es tui needs an interactive terminal (stdin/stderr is not a tty)")
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        raise UserError("flock-es tui cannot read the terminal size") from None
    if size.columns < MIN_WIDTH or size.lines < MIN_HEIGHT:
        raise UserError(
            f"terminal too small: {size.columns}x{size.lines}; "
            f"flock-es tui needs at least {MIN_WIDTH}x{MIN_HEIGHT}"
        )
