"""What the CLI does when its stdout cannot be written (``| head -1``, ``> /dev/full``).

Every command runs with a guarded ``sys.stdout``:

- For ``runs``, ``show``, ``export -o -`` and the like, a reader that went away
  (a closed pipe) ends the command quietly with exit 1, and any other write
  error (a full disk, an I/O error) is one line naming standard output, exit 2
  — never a traceback.
- While ``run``, ``resume`` or ``fork`` drive a run (:func:`keep_running`), the
  run's agents are paid work: a closed or full stdout is no reason to fail the
  run or lose what it has not yet recorded. The first failed write points file
  descriptor 1 at ``/dev/null`` (as the Python docs advise for SIGPIPE), says
  so once on stderr, and the run carries on to its own end and exit code.

    >>> import io
    >>> with guard_stdout(io.StringIO()) as out:
    ...     print("hello", file=out)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from flock_es.errors import OutputError

__all__ = ["StdoutClosed", "guard_stdout", "keep_running"]


class StdoutClosed(Exception):
    """The reader of stdout went away; the command has nothing left to do."""


class _GuardedStdout:
    """A stand-in for ``sys.stdout`` that turns write errors into the CLI's policy."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self.keep_going = False
        # The first write error, kept: a caller that swallows it (click probes a
        # stream with an empty write) must not turn the next write into a success.
        self.error: OSError | None = None

    def _discard_from_now_on(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._inner.fileno())
            os.close(devnull)
        # What was buffered for the closed pipe now goes to /dev/null, so that
        # the interpreter's last flush at exit finds nothing to complain about.
        with contextlib.suppress(OSError, ValueError):
            self._inner.flush()

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            self.error = exc
            self._discard_from_now_on()
            if self.keep_going:
                reason = (
                    "was closed by its reader"
                    if isinstance(exc, BrokenPipeError)
                    else f"cannot be written ({exc.strerror or exc})"
                )
                sys.stderr.write(
                    f"flock-es: stdout {reason}; the run goes on, "
                    "and its further output is discarded\n"
                )
        if self.keep_going:
            return
        if isinstance(self.error, BrokenPipeError):
            raise StdoutClosed from None
        detail = self.error.strerror or self.error
        raise OutputError(f"cannot write to standard output: {detail}") from None

    def write(self, text: str) -> int:
        if self.error is not None:
            self._failed(self.error)
            return len(text)
        try:
            return self._inner.write(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.error is not None:
            self._failed(self.error)
            return
        try:
            self._inner.flush()
        except OSError as exc:
            self._failed(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def guard_stdout(stream: TextIO | None = None) -> Iterator[TextIO]:
    """Install the guard as ``sys.stdout`` for the block, flushing through it at the end."""
    inner = stream if stream is not None else sys.stdout
    guarded = _GuardedStdout(inner)
    previous = sys.stdout
    sys.stdout = guarded
    try:
        yield guarded  # type: ignore[misc]
        guarded.flush()
    finally:
        sys.stdout = previous


def keep_running() -> None:
    """From now on a failed stdout write is discarded with a notice, not an error.

    Called once a run is about to be driven; outside :func:`guard_stdout`
    (a library caller) it does nothing.
    """
    if isinstance(sys.stdout, _GuardedStdout):
        sys.stdout.keep_going = True
