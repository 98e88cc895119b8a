"""Whether a program file is being imported: no run may start while it is.

``flock-es run``, ``resume``, ``replay``, ``fork``, ``worker`` and ``scale``
import the user's program to find its ``Flock`` and its ``main()``, then drive
the run themselves. A program that starts a run when imported
(``asyncio.run(main())`` at module level rather than under
``if __name__ == "__main__":``) would run it there, before the command could
set it up: on the program's own database and model rather than ``--db`` and
``--model``, and under ``resume`` or ``replay`` as a new run that pays for every
model call again. So ``Flock.start`` refuses to while ``importing`` is under
way, before it opens the log or calls a model (``StartedOnImport``).

Example::

    with importing():
        exec(code, module.__dict__)   # a Flock started in there raises StartedOnImport
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flock_es.errors import ProgramError

__all__ = ["StartedOnImport", "check_not_importing", "importing"]

# A depth, not a flag: a program may load another (a test harness does). Global, not a
# context variable: a thread the program starts while imported would start with an
# empty context and so escape the check.
_importing = 0


class StartedOnImport(ProgramError):
    """A program started a run while flock-es imported it."""


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """Mark the import of a program file for its duration."""
    global _importing
    _importing += 1
    try:
        yield
    finally:
        _importing -= 1


def check_not_importing() -> None:
    """Raise ``StartedOnImport`` if a program file is being imported."""
    if _importing:
        raise StartedOnImport(
            "starts a run while flock-es imports the program, which then calls main() "
            'itself: put this line under `if __name__ == "__main__":`'
        )
