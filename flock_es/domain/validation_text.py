"""What a pydantic ``ValidationError`` says, in the words of a one-line error.

The messages that name a failed validation (a payload its type refuses, a
program's objects, an imported event, a published dict) all lead with its first
error as ``loc: msg``.

Example::

    first_problem(exc)  # "left: Input should be greater than or equal to 0"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["first_problem"]


def first_problem(exc: ValidationError, root: str = "value") -> str:
    """``loc: msg`` of ``exc``'s first error; ``root`` names the whole value (no loc)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or root
    return f"{loc}: {err.get('msg')}"
