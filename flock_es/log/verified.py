"""Whether a SQLite log is as a flock-es process left it: then its next open skips
the integrity check (``integrity.verify``).

That check costs its whole budget on a large file: a second before every command
that writes a log of 1 GB or more (``flock-es run`` of the news example took
1.4 s there against 0.4 s on a new file), a fifth of one before every command
that reads it, and it only ever read the same first part of such a file. A
process that wrote a log marks it as it leaves it: at exit, once every
connection is closed (no WAL content left beside it), it writes the file's
identity, size, and modification and change times to ``<db>-verified``. A file
still so is unchanged since then: nothing has written to it, so nothing can
have damaged it through the file system, and the check is skipped. Any write
changes its change time (which no program can set back), and a file put in its
place is another inode, so the check runs again. A process that saw the file
damaged never marks it and removes the mark (``suspect``); one killed never
reaches its exit, and a WAL with content (a live writer, or a killed one's
commits) always means a check.

Example::

    wrote(Path("data/flock-es.db"))      # this process writes it: mark it at exit
    unchanged(Path("data/flock-es.db"))  # True: no check needed at this open
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
from pathlib import Path

__all__ = ["MARK_SUFFIX", "fingerprint", "mark", "suspect", "unchanged", "wrote"]

MARK_SUFFIX = "-verified"
_WROTE: set[Path] = set()  # files this process wrote: marked at its exit
_SUSPECT: set[Path] = set()  # files this process saw damaged: never marked


def _marker(path: Path) -> Path:
    return path.with_name(path.name + MARK_SUFFIX)


def fingerprint(path: Path) -> list[int] | None:
    """The file's device, inode, size, mtime and ctime (ns); None while its WAL (or a
    rollback journal) holds anything: what it holds is not in the file yet."""
    try:
        for side in ("-wal", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path.with_name(path.name + side)).st_size > 0:
                    return None
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def unchanged(path: Path) -> bool:
    """Whether ``path`` is as the last flock-es process that wrote it left it."""
    now = fingerprint(path)
    if now is None:
        return False
    try:
        return bool(json.loads(_marker(path).read_text()) == now)
    except (OSError, ValueError):
        return False


def mark(path: Path) -> None:
    """Record ``path`` as it is now (nothing if it is in use, or was seen damaged).
    A mark that cannot be written (a full disk, a read-only directory) is no error:
    the next open checks the file, as it would without one."""
    path = Path(path).absolute()
    if path in _SUSPECT:
        return
    now = fingerprint(path)
    if now is None:
        return
    # One short write: a torn one leaves text that does not parse, which is no mark.
    with contextlib.suppress(OSError):
        _marker(path).write_text(json.dumps(now))


def wrote(path: Path) -> None:
    """This process writes ``path``: mark it at exit (``mark``)."""
    if not _WROTE:
        atexit.register(_mark_all)
    _WROTE.add(Path(path).absolute())


def suspect(path: Path | str) -> None:
    """This process found ``path`` damaged: remove its mark, never mark it again."""
    path = Path(path).absolute()
    _SUSPECT.add(path)
    with contextlib.suppress(OSError):
        _marker(path).unlink()


def _mark_all() -> None:
    for path in sorted(_WROTE):
        # A mark is a cache: whatever goes wrong writing it at exit (the file's folder
        # gone, a full disk) must not turn a clean exit into a traceback.
        with contextlib.suppress(Exception):
            mark(path)
