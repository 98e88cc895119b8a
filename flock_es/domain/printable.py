"""Text from a run, made safe to print on a terminal.

An error message, a model's answer, a tool's result or a scraped page can hold
control characters: ``ESC ] 0 ; … BEL`` retitles the terminal, ``ESC [ 2 J``
clears it, a carriage return writes over the line that names the failed task.
``flock-es run`` printed such an error as it was, and Rich and Textual drop only
BEL, BS, VT, FF and CR, not ESC. ``printable`` writes each control character
(C0 but tab and newline, DEL, C1) as its Python escape, so the terminal shows
what the text holds instead of doing what it says. The log keeps the text as it
was; only what is printed changes.

Example::

    printable("bad input: \\x1b[2Jgone\\r")   # 'bad input: \\\\x1b[2Jgone\\\\r'
    printable("two\\nlines\\tand café")      # returned as it is
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(m: re.Match[str]) -> str:
    return ascii(m.group())[1:-1]


def printable(text: str) -> str:
    """``text`` with its control characters (not tab or newline) written as escapes."""
    if text.isprintable():  # most text: no scan beyond this one
        return text
    return _CONTROL.sub(_escape, text)
