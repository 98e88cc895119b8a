"""Waiting for another process's commit to a SQLite file, off the event loop.

``PRAGMA data_version`` changes when another connection commits. The shared
runs' ``wait`` polled it every 5 ms from the event loop: each poll a hop to a
thread and back, and a wake-up of the loop (and of its precise timer, which
spins the last 0.25 ms before a deadline). A ``flock-es worker`` with nothing
to do used 6.3% of a core that way, and a ``run --no-execute`` waiting for its
workers 16.5%, taken from the workers that had work on a small machine. Here
one thread polls on a connection of its own and sleeps between polls: a wait
is one hop, and the loop sleeps until something changed (or the wait's
timeout). Now 3.3% and 9.3% (``bench/bench_idle.py``); most of what is left is
the 5 ms timed sleep itself, about 0.1 ms of CPU a wake-up on a virtual machine,
which a worker with no run joined does not pay (it does not wait: 0.4%).

Example::

    watch = DataVersionWatch(Path("data/flock-es.db"))
    woke = await watch.wait(5.0)  # True once another connection committed
    await watch.close()
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flock_es.log.schema import BUSY_TIMEOUT_MS

__all__ = ["POLL_SECONDS", "DataVersionWatch"]

POLL_SECONDS = 0.005
"""How often the watching thread looks at ``data_version``."""


class DataVersionWatch:
    """Wakes a waiter when another connection commits to the file at ``path``.

    The first poll takes the version as it finds it; each later change wakes one
    wait (a commit made between two waits wakes the next). This process's own
    commits on other connections (a claim, a renewal) wake it too: the worker
    then looks once more and finds nothing new.
    """

    def __init__(self, path: Path, every: float = POLL_SECONDS) -> None:
        self.path = path
        self.every = every
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="flock-es-watch")
        self._con: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._closing = threading.Event()

    async def wait(self, timeout: float) -> bool:
        """Sleep until another connection commits (True) or ``timeout`` seconds pass."""
        if self._closing.is_set():
            return False
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._poll, timeout)

    def _poll(self, timeout: float) -> bool:
        """In the thread: poll until the version moves, ``timeout`` passes or closing."""
        con = self._con
        if con is None:
            con = self._con = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
            )
        deadline = time.monotonic() + timeout
        while True:
            version = int(con.execute("PRAGMA data_version").fetchone()[0])
            if self._seen is None:
                self._seen = version
            elif version != self._seen:
                self._seen = version
                return True
            if time.monotonic() >= deadline or self._closing.wait(self.every):
                return False

    async def close(self) -> None:
        """End a wait in progress (within one poll) and close the thread's connection."""
        self._closing.set()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_con)
        self._thread.shutdown(wait=False)

    def _close_con(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
