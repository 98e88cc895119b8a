"""A task's error on a summary line: its start, and how much more there is.

An error's message can hold what the agent was given (``ValueError(f"cannot
parse: {text}")``): a 2.4 MB message made ``flock-es run``'s summary and
``flock-es show`` print 2.4 MB to the terminal. The text views print its first
``ERROR_CHARS`` characters and say how many more ``--json`` has.

Example::

    error_line("x" * 1000, "flock-es show r-1 --json")
    # 300 x, then '… [+700 characters: flock-es show r-1 --json has the whole error]'
"""

from __future__ import annotations

from flock_es.domain.printable import printable

__all__ = ["ERROR_CHARS", "error_line"]

ERROR_CHARS = 300


def error_line(error: str, whole: str) -> str:
    """``error`` cut to ``ERROR_CHARS`` characters, saying that command ``whole`` has all;
    its control characters escaped (``printable``: a terminal must not act on them)."""
    left = len(error) - ERROR_CHARS
    if left <= 0:
        return printable(error)
    return f"{printable(error[:ERROR_CHARS])}… [+{left:,} characters: {whole} has the whole error]"
