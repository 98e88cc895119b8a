"""Making a path a current flock-es database: created whole, or finished, or upgraded.

A new file is built under a temporary name next to it and then put in place
with ``os.link``, which never replaces an existing file. So any number of
processes (two workers, ``run --share`` and a worker) may create the same new
file at the same moment: exactly one file wins, and every process sees it
either absent or complete, never half-made. A process killed while building
leaves only its temporary file (removed by the next creator once its pid is
gone). An existing file that is empty or was left half-made by an older
version is finished in place, in one ``BEGIN IMMEDIATE`` transaction.

Example::

    ensure_schema(Path("data/flock-es.db"))  # creates, finishes or upgrades it
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from pathlib import Path

from flock_es.log.integrity import verify
from flock_es.log.liveness import pid_alive
from flock_es.log.schema import (
    BUSY_TIMEOUT_MS,
    DB_SCHEMA_VERSION,
    WRITER_CHECK_SECONDS,
    check_database,
    initialise,
    read_uri,
    storage_error,
)
from flock_es.log.verified import wrote

__all__ = ["ensure_schema"]

_PART = ".creating"  # the temporary file's suffix: ``.NAME.PID.RANDOM.creating``


def ensure_schema(path: Path, *, verify: bool = True) -> None:
    """Make ``path`` a current flock-es database (create, finish or upgrade it), after a
    bounded integrity check of an existing file (``verify``). The file is marked as
    this process leaves it, at its exit (``verified.wrote``)."""
    wrote(path)
    try:
        if _current(path, verify):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() and _create_whole(path) and _current(path, False):
            return
        con = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            initialise(con)
        finally:
            con.close()
    except (OSError, sqlite3.Error) as exc:
        raise storage_error(path, exc, writing=True) from None


def _current(path: Path, check: bool) -> bool:
    """Whether ``path`` is a flock-es database of the current schema (checked first)."""
    if not check_database(path, must_exist=False):
        return False
    con = sqlite3.connect(read_uri(path), uri=True)
    try:
        # Never append to a damaged file: that buries the damage under new events.
        if check:
            verify(path, con, WRITER_CHECK_SECONDS)
        version = con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()
    return int(version) == DB_SCHEMA_VERSION


def _create_whole(path: Path) -> bool:
    """Build the schema in a temporary file and link it to ``path`` (never replacing a
    file another process put there first). False where the file system has no hard
    links: the caller then creates the file in place."""
    _remove_abandoned(path)
    part = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{_PART}")
    try:
        con = sqlite3.connect(part, isolation_level=None)
        try:
            initialise(con)
            # Everything into the main file, so the -wal and -shm go with the close.
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
        with contextlib.suppress(FileExistsError):  # another process's file won
            os.link(part, path)
        return True
    except PermissionError:
        raise
    except OSError:  # no hard links here (some network or FUSE file systems)
        return False
    finally:
        for leftover in (part, Path(f"{part}-wal"), Path(f"{part}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _remove_abandoned(path: Path) -> None:
    """Temporary files of creators killed on this machine (their pid is gone)."""
    for part in path.parent.glob(f".{path.name}.*{_PART}*"):
        pid = part.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                part.unlink()
