"""The fold in a child process: the UI's interpreter never folds a big log.

Folding 400,000 events costs about ten CPU-seconds of Python. On a thread of
the UI's process it holds the GIL against the UI thread, whose every wake-up
then waits for it: keys took seconds. ``RemoteServer`` starts
``python -m flock_es.tui.remote`` which runs a ``ViewServer`` over its own
read-only connection, folds in slices, and between slices answers the UI's
questions (a ``Frame``, the rows of a window, a detail) over a socket. The UI
holds only what is on screen. A second socket carries "something changed"
notes, at most one per ``NOTE_SECONDS`` while folding, which the app turns
into a coalesced redraw. The child exits when the app closes its end.

Example::

    server = RemoteServer("data/flock-es.db", None)
    server.wait(1.0)                     # True once something was folded
    server.frame(ViewRequest()).agents   # the lanes, from the child's fold
    server.close()
"""

from __future__ import annotations

import collections
import gc
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from flock_es.errors import DatabaseError, FlockError

from .detail import Detail
from .server import Frame, ViewRequest, ViewServer
from .sources import Span
from .vlist import Row

__all__ = ["RemoteServer", "main"]

NOTE_SECONDS = 0.25  # following a run, the screen is told at most this often (4 redraws a second)
LOADING_NOTE_SECONDS = 1.0  # loading a backlog ("loading 35%"): a redraw a second is plenty
CHILD_CHUNK = 500  # events read at once: between reads the child answers, so a key waits ~1 ms
IDLE_AFTER = 5.0  # nothing new for this long: check (one PRAGMA data_version) 4x less often


class RemoteServer:
    """A ``ViewServer`` in a child process, with the same questions (see the module)."""

    def __init__(self, db: str, run_id: str | None, poll_seconds: float = 0.1) -> None:
        ours, theirs = socket.socketpair()
        notes, their_notes = socket.socketpair()
        fds = (theirs.fileno(), their_notes.fileno())
        argv = [sys.executable, "-m", "flock_es.tui.remote", *map(str, fds)]
        self.proc = subprocess.Popen(
            [*argv, str(poll_seconds), db, run_id or ""],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        their_notes.close()
        self.conn = Connection(ours.detach())
        self.notes = Connection(notes.detach())
        self.lock = threading.Lock()
        self.ready = False  # the child said hello: questions are answered at once from now
        self.closed = threading.Event()  # the app is quitting: a waiting loader returns at once

    def call(self, method: str, *args: Any) -> Any:
        """Ask the child (it answers between slices of its fold: milliseconds)."""
        with self.lock:
            try:
                self.conn.send((method, args))
                ok, value = self.conn.recv()
            except (EOFError, OSError):
                raise DatabaseError(
                    f"the TUI's reader process exited ({self.proc.poll()})"
                ) from None
        if not ok:
            raise DatabaseError(value)
        return value

    def frame(self, req: ViewRequest) -> Frame:
        frame: Frame = self.call("frame", req)
        return frame

    def rows(self, name: str, req: ViewRequest, start: int, count: int) -> list[Row]:
        out: list[Row] = self.call("rows", name, req, start, count)
        return out

    def spans(self, req: ViewRequest, start: int, count: int, now: float) -> list[Span]:
        out: list[Span] = self.call("spans", req, start, count, now)
        return out

    def detail(self, kind: str, key: str) -> Detail | None:
        out: Detail | None = self.call("detail", kind, key)
        return out

    def artifact(self, key: str) -> Any:
        return self.call("artifact", key)

    def command(self, name: str, args: tuple[Any, ...]) -> None:
        """Queue a command; the child runs it after the question it is answering."""
        self.call("command", name, args)

    def wait(self, timeout: float) -> bool:
        """Wait for a note from the child; True if something changed."""
        try:
            if not self.notes.poll(timeout):
                return False
            while self.notes.poll(0):
                self.notes.recv()
            self.ready = True
        except (EOFError, OSError):
            # The child is gone (the next question says so) or the app closed us to
            # quit: then return at once, or `q` would wait out the loader's sleep.
            self.closed.wait(timeout)
            return False
        return True

    def close(self) -> None:
        self.closed.set()
        for c in (self.conn, self.notes):
            c.close()
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Child:
    """The child's loop: fold a slice, answer what was asked, run queued commands."""

    def __init__(
        self, conn: Connection, notes: Connection, server: ViewServer, poll_seconds: float
    ) -> None:
        self.conn, self.notes, self.server = conn, notes, server
        self.poll_seconds = poll_seconds
        self.commands: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self.noted = 0.0
        self.owed = False

    def answer(self) -> None:
        """Answer every question waiting (commands are queued, not run here)."""
        while self.conn.poll(0):
            method, args = self.conn.recv()
            if method == "command":
                self.commands.append(args)
                self.conn.send((True, None))
                continue
            try:
                self.conn.send((True, getattr(self.server, method)(*args)))
            except FlockError as exc:
                self.conn.send((False, str(exc)))

    def answer_and_note(self) -> None:
        """Between slices of a long command: answer, and tell the screen (throttled)."""
        self.answer()
        self.note()

    def note(self, force: bool = False) -> None:
        every = NOTE_SECONDS if self.server.m.caught_up else LOADING_NOTE_SECONDS
        if force or time.monotonic() - self.noted > every:
            self.notes.send(1)
            self.noted, self.owed = time.monotonic(), False
        else:
            self.owed = True

    def scan(self) -> bool:
        """Go on with a filter's scans (``ViewServer.scan``); True if it scanned any."""
        try:
            return self.server.scan(self.answer)
        except FlockError:
            return False

    def run(self) -> None:
        self.note(force=True)  # started: the app may ask now without waiting for imports
        quiet_since = time.monotonic()
        while True:
            self.answer()
            did = 0
            while self.commands:
                name, args = self.commands.popleft()
                try:  # travelling back folds the run again: the screen hears how far
                    self.server.command(name, args, self.answer_and_note)
                except FlockError:
                    self.server.commands_done += 1
                did += 1
            events, told = self.server.fold(self.answer)
            if told:  # it could not read, or can again: the screen says so
                self.note(force=True)
            # A filter's lists fill between questions once the fold has caught up, while
            # a live run goes on too (not while a backlog loads: that would slow it).
            scanned = self.server.m.caught_up and self.scan()
            if events or did:
                # What was folded lives as long as the screen shows the run, and holds no
                # cycles: frozen, the collector never walks it again. Otherwise each full
                # collection walks the whole state, and building a 400,000-event state
                # spends more time in the collector than in the fold.
                gc.freeze()
                quiet_since = time.monotonic()
                self.note(force=bool(did))
                if not self.server.m.caught_up:
                    continue
            elif scanned:  # noted as the lists grow, and scanned on at once
                self.note()
                continue
            elif self.owed:
                self.note(force=True)
            idle = time.monotonic() - quiet_since > IDLE_AFTER
            self.conn.poll(4 * self.poll_seconds if idle else self.poll_seconds)


def main(argv: list[str]) -> int:
    """``python -m flock_es.tui.remote FD NOTES_FD POLL_SECONDS DB [RUN]`` (``RemoteServer``)."""
    from flock_es.log.ports import open_store, store_kind

    from .monitor import Monitor

    conn, notes = Connection(int(argv[0])), Connection(int(argv[1]))
    store = open_store(argv[3], readonly=True)
    reader = store.reader()
    # One thread asks everything here: on SQLite the fold and the screen's questions share
    # one connection, so the file gets its (bounded, 0.2 s) integrity check once, not twice.
    details = reader if store_kind(argv[3]) == "sqlite" else store.reader()
    monitor = Monitor(reader, argv[4] or None, chunk=CHILD_CHUNK)
    gc.freeze()  # what was imported lives as long as the process: never walk it again
    child = _Child(conn, notes, ViewServer(monitor, details), float(argv[2]))
    try:
        child.run()
    except (EOFError, OSError, KeyboardInterrupt):
        return 0  # the app closed its end
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
