"""WAL checkpoints beside the writer, not inside its commits.

SQLite copies the WAL back into the database file (a checkpoint) on the
connection whose commit takes the WAL past ``wal_autocheckpoint`` pages, inside
that commit: the writer's thread then reads and writes some 40 MB and syncs
the file twice before its commit returns, and whatever waits for that commit
(the next agents of a run) waits for the copy too. In workload (b) that was a
good part of the writer thread's growth from 2,000 to 20,000 artifacts, most of
it system time (issue 14: a run of 2,000 artifacts never reaches a checkpoint).

``WalCheckpointer`` runs passive checkpoints on a connection of its own, in a
thread of its own, each time the writer has committed ``EVERY_EVENTS`` events
since the last, once the WAL has held ``FROM_FRAMES`` frames: SQLite does the
copy without the GIL, on the other core, while the writer goes on committing (a
passive checkpoint never blocks a writer or a reader; it copies the frames no
reader still needs). The writer keeps its own ``wal_autocheckpoint``, at twice
``FROM_FRAMES``: by the time it fires, most frames are copied, so its checkpoint
is short, and the WAL restarts from its beginning once every frame is copied, as
before. A WAL that never grows to ``FROM_FRAMES`` (a run of 2,000 artifacts) is
copied at the writer's close, as before. Durability does not change: a commit's
durability is the WAL's, and a checkpoint syncs the WAL before it copies and the
database file after it copies, whichever connection runs it.

Example::

    checkpointer = WalCheckpointer(Path("data/flock-es.db"))
    checkpointer.committed(500)   # the writer, after each commit
    checkpointer.stop()           # before the writer closes its connection
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

__all__ = ["EVERY_EVENTS", "FROM_FRAMES", "WalCheckpointer", "wal_reached"]

EVERY_EVENTS = 8192
"""Events committed between two background checkpoints: some 2,000 WAL pages in
workload (b), a fifth of the writer's ``wal_autocheckpoint``. A log that commits
less than this (a test, a short run) never sees one: its WAL syncs are its commits'."""


FROM_FRAMES = 10_000
"""The WAL frames a log's WAL holds (at its largest so far) before background
checkpoints begin: half the writer's own ``wal_autocheckpoint``
(``schema.WRITER_PRAGMAS``), which was this before it had a checkpointer beside it.
A WAL that never grew this large (a run of 2,000 artifacts in workload (b) ends at
about 9,000) is copied at the writer's close, as before."""

_FRAME_HEAD = 24  # bytes before each page in a WAL frame (https://sqlite.org/walformat.html)


def wal_reached(db: Path, frames: int, page_size: int) -> bool:
    """Whether the WAL file of ``db`` has ever held ``frames`` frames: its size, which
    only grows while the log is open (a restarted WAL is written over from its start).

    Read with ``stat``, never by opening a file of the database: closing a descriptor
    drops every POSIX lock this process holds on that file, SQLite's too (reading
    mxFrame from the ``-shm`` file so let another connection take the wal-index for
    abandoned and reset it under the writer's map, which then died of SIGBUS)."""
    try:
        size = os.stat(f"{db}-wal").st_size
    except OSError:
        return False
    return size >= frames * (page_size + _FRAME_HEAD)


class WalCheckpointer:
    """Passive WAL checkpoints of the database at ``path`` in a thread of its own."""

    def __init__(
        self, path: Path, every: int = EVERY_EVENTS, from_frames: int = FROM_FRAMES
    ) -> None:
        self.path = path
        self.every = every
        self.from_frames = from_frames
        self.pending = 0  # events committed since the last kick
        self.checkpoints = 0  # checkpoints run (tests)
        self._kick = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="flock-es-wal", daemon=True)
        self._thread.start()

    def committed(self, events: int) -> None:
        """The writer committed ``events`` events: a checkpoint once they add up to ``every``."""
        self.pending += events
        if self.pending >= self.every:
            self.pending = 0
            self._kick.set()

    def _serve(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:  # the writer's own checkpoints still run
            return
        try:
            # The policy of every connection of the log (``schema.PRAGMAS``): a checkpoint
            # syncs as the writer's would; a passive one never waits for a lock.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=0")
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            large = False  # the WAL has held FROM_FRAMES frames: from then on, each kick
            while True:
                self._kick.wait()
                self._kick.clear()
                if self._stopping:
                    return
                large = large or wal_reached(self.path, self.from_frames, page_size)
                if not large:
                    continue
                with contextlib.suppress(sqlite3.Error):  # busy, or the file went away
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
        finally:
            conn.close()

    def stop(self) -> None:
        """End the thread (a checkpoint under way finishes first) and close its connection."""
        self._stopping = True
        self._kick.set()
        self._thread.join()
