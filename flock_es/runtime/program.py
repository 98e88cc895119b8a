"""Load a user's program file and find its Flock and its ``main()``.

How a program hands its seed work to the CLI: it defines ``flock = Flock(...)``
at module level and an ``async def main()`` (or ``main(flock)``) that publishes
the seed artifacts. ``flock-es run`` imports the file (so an
``if __name__ == "__main__":`` block does not run), calls ``main()``, then runs
until idle. The same file runs as ``python program.py`` through that block.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from flock_es.domain.validation_text import first_problem
from flock_es.errors import ProgramError, UserError
from flock_es.runtime.flock import Flock
from flock_es.runtime.program_import import StartedOnImport, importing

__all__ = ["MODULE_NAME", "Program", "call_main", "describe_exception", "load_program"]

MODULE_NAME = "__flock_program__"


@dataclass(slots=True)
class Program:
    path: Path
    module: ModuleType
    flock: Flock
    main: Callable[..., Any] | None


def describe_exception(path: Path, exc: BaseException) -> str:
    """One line naming the error and the line of the user's file it came from."""
    if isinstance(exc, ValidationError):
        what = f"{exc.title} failed validation: {first_problem(exc)}"
        if exc.error_count() > 1:
            what += f" (and {exc.error_count() - 1} more)"
    else:
        what = f"{type(exc).__name__}: {exc}"
    return f"{path}{_line_in(path, exc)}: {what}"


def _line_in(path: Path, exc: BaseException, outermost: bool = False) -> str:
    """``:N``, the line of the user's file ``exc`` was last raised through (``outermost``:
    first), or ""."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in frames if outermost else reversed(frames):
        if Path(frame.filename).resolve() == path.resolve():
            return f":{frame.lineno}"
    return ""


def load_program(path: Path) -> Program:
    """Import the program file at ``path`` and find its Flock and ``main``.

    Example::

        program = load_program(Path("examples/news.py"))
        program.flock.db_path = Path("/tmp/news.db")
    """
    if not path.exists():
        raise ProgramError(f"{path}: no such file")
    if path.is_dir() or path.suffix != ".py":
        raise ProgramError(f"{path}: expected a Python file (.py)")
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ProgramError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        # The file's text as it is now, compiled here and not through the loader's
        # bytecode cache: a cached bytecode is trusted while the source keeps its size
        # and its mtime in whole seconds, so an edit within the second that kept the
        # size (``n >= 3`` to ``n >= 4``) ran the old code, and replay said identical.
        code = compile(path.read_bytes(), spec.origin or str(path), "exec", dont_inherit=True)
        with importing():
            exec(code, module.__dict__)
    except SyntaxError as exc:
        # In a module the program imports: that file (not text given to exec, "<string>").
        # No line for an error in the whole file (a NUL byte in it): the path alone.
        file = exc.filename or spec.origin
        where = file if file and file != spec.origin and not file.startswith("<") else str(path)
        where += f":{exc.lineno}" if exc.lineno else ""
        raise ProgramError(f"{where}: syntax error: {exc.msg}") from None
    except StartedOnImport as exc:  # the module-level line, not the publish under it
        raise StartedOnImport(f"{path}{_line_in(path, exc, outermost=True)}: {exc}") from None
    except UserError as exc:
        raise type(exc)(f"{path}{_line_in(path, exc)}: {exc}") from None
    except Exception as exc:
        raise ProgramError(describe_exception(path, exc)) from None
    flocks = [v for v in vars(module).values() if isinstance(v, Flock)]
    if not flocks:
        raise ProgramError(f"{path} defines no Flock: add `flock = Flock()` at module level")
    if len({id(f) for f in flocks}) > 1:
        raise ProgramError(f"{path} defines more than one Flock; keep one per program")
    main = getattr(module, "main", None)
    if main is not None and not callable(main):
        main = None
    return Program(path=path, module=module, flock=flocks[0], main=main)


async def call_main(program: Program) -> None:
    """Call the program's ``main()`` (or ``main(flock)``), sync or async."""
    if program.main is None:
        raise ProgramError(
            f"{program.path} defines no main(): add `async def main()` that publishes the seed work"
        )
    try:
        params = [
            p
            for p in inspect.signature(program.main).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    result = program.main(program.flock) if params else program.main()
    if inspect.isawaitable(result):
        await result
