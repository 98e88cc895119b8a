"""The integrity check a command makes before it uses a SQLite log, bounded in time.

``PRAGMA quick_check`` and every event body valid JSON, within a budget: 0.2 s
before a command reads (``schema.READER_CHECK_SECONDS``), 1 s before a writer
appends (``schema.WRITER_CHECK_SECONDS``: never bury damage under new events). A
check the budget cuts short on a huge file passes; damage found later while
reading gives the same one-line error. A process checks each file once
(``verify``), and not at all a file unchanged since a flock-es process that
wrote it exited (``log/verified.py``).

Example::

    con = sqlite3.connect(read_uri(path), uri=True)
    verify(path, con, READER_CHECK_SECONDS)   # DatabaseDamagedError if damaged
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from flock_es.log.schema import damaged_message, storage_error
from flock_es.log.verified import unchanged

__all__ = ["check_integrity", "verify"]

# The files this process checked, by device, inode and first event (a file put in
# place of another at a reused inode has another first event), and the budget each
# check had. A command opens its log several times (a run: its reader and its writer;
# a resume: five times), and on a large file every check spent its whole budget: a
# run of the news example took 2.3-2.9 s on a log holding a 20,000-artifact run,
# against 0.6-0.9 s on a new one (issue 14). Damage done to the file later is found
# while reading it, as for the part of a large file a check left unread.
_CHECKED: dict[tuple[object, ...], float] = {}


def _identity(path: Path, con: sqlite3.Connection) -> tuple[object, ...] | None:
    """Which file ``path`` is (None if that cannot be read: the check then runs)."""
    try:
        st = os.stat(path)
        first = con.execute("SELECT run_id, ts FROM events ORDER BY seq LIMIT 1").fetchone()
    except (OSError, sqlite3.Error):
        return None
    return (st.st_dev, st.st_ino, *(first or ()))


def verify(path: Path, con: sqlite3.Connection, budget_s: float) -> None:
    """A cheap integrity check, bounded in time: ``PRAGMA quick_check`` and every event
    body valid JSON. Raises DatabaseDamagedError; a check cut short by the budget on a
    huge file passes (damage found later while reading still gives the same error).
    A file this process already checked with at least this budget is not checked
    again (``_CHECKED``), nor one unchanged since a process that wrote it exited."""
    key = _identity(path, con)
    if key is not None and _CHECKED.get(key, 0.0) >= budget_s:
        return
    if not unchanged(path):
        check_integrity(path, con, budget_s)
    if key is not None:
        _CHECKED[key] = max(_CHECKED.get(key, 0.0), budget_s)


def check_integrity(path: Path, con: sqlite3.Connection, budget_s: float) -> None:
    """``verify``'s check itself, whether or not this process made it before."""
    from flock_es.errors import DatabaseDamagedError

    # The budget is kept by a timer that interrupts the connection: a progress handler
    # is called between VM steps only, and quick_check walks every b-tree page in one
    # step. On a 1.3 GB log the handler first ran after 0.48 s whatever the budget, so
    # every `flock-es runs` or `show` of it spent that much (issue 14 at scale).
    done = threading.Event()
    timer = threading.Thread(target=_interrupt, args=(con, budget_s, done), daemon=True)
    timer.start()
    try:
        rows = con.execute("PRAGMA quick_check(1)").fetchall()
        if rows != [("ok",)]:
            what = str(rows[0][0]).replace("*** in database main ***", "")
            raise DatabaseDamagedError(damaged_message(path, " ".join(what.split())[:160]))
        bad = con.execute("SELECT seq FROM events WHERE NOT json_valid(body) LIMIT 1").fetchone()
        if bad is not None:
            raise DatabaseDamagedError(damaged_message(path, f"event {bad[0]} is not valid JSON"))
    except sqlite3.OperationalError as exc:
        if "interrupted" not in str(exc):
            raise storage_error(path, exc) from None
    except sqlite3.DatabaseError as exc:
        raise storage_error(path, exc) from None
    finally:
        done.set()
        timer.join()  # no interrupt after this: the connection's next statements run whole


def _interrupt(con: sqlite3.Connection, budget_s: float, done: threading.Event) -> None:
    """Interrupt ``con`` once ``budget_s`` is spent, and again each millisecond until the
    check is done: an interrupt made while no statement runs is lost, and the check's
    next statement may be about to start."""
    if done.wait(budget_s):
        return
    while not done.is_set():
        con.interrupt()
        done.wait(0.001)
