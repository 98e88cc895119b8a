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
since the last and the WAL holds at least ``FROM_FRAMES`` frames: SQLite does the
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
import struct
import threading
from pathlib import Path

__all__ = ["EVERY_EVENTS", "FROM_FRAMES", "WalCheckpointer", "wal_frames"]

EVERY_EVENTS = 8192
"""Events committed between two background checkpoints: some 2,000 WAL pages in
workload (b), a fifth of the writer's ``wal_autocheckpoint``. A log that commits
less than this (a test, a short run) never sees one: its WAL syncs are its commits'."""


FROM_FRAMES = 10_000
"""The fewest WAL frames worth a background checkpoint: half the writer's own
``wal_autocheckpoint`` (``schema.WRITER_PRAGMAS``), which was this before it had a
checkpointer beside it: a WAL that never grew this large (a run of 2,000 artifacts
in workload (b) ends at about 9,000) is copied at the writer's close, as before."""

_MX_FRAME = struct.Struct("=I")  # the header's mxFrame, in the host's byte order
_MX_FRAME_AT = 16


def wal_frames(db: Path) -> int | None:
    """The frames the WAL of ``db`` holds, read from the wal-index header in its
    ``-shm`` file (``mxFrame``, at offset 16: https://sqlite.org/walformat.html);
    None if it cannot be read. A hint, read without a lock: a checkpoint decides
    nothing else by it."""
    try:
        fd = os.open(f"{db}-shm", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, _MX_FRAME.size, _MX_FRAME_AT)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _MX_FRAME.unpack(data)[0] if len(data) == _MX_FRAME.size else None


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
            while True:
                self._kick.wait()
                self._kick.clear()
                if self._stopping:
                    return
                frames = wal_frames(self.path)
                if frames is not None and frames < self.from_frames:
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
