"""Opening the log and keeping the screen's ``ViewServer`` folding.

Two ways to fold, one set of questions (``tui/server.py``):

- ``process`` (the default): a child process folds and answers
  (``RemoteServer``); the app's worker thread only waits for its notes, so the
  UI's interpreter never folds and keys answer at once at any log size.
- ``thread``: a ``ViewServer`` in this process, folded by the worker thread
  (tests with a frozen clock use it: a clock cannot cross a process boundary).

Either way the worker posts one coalesced ``Folded`` message at a time.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from typing import Any

from textual import events, work
from textual.message import Message
from textual.worker import get_current_worker

from flock_es.errors import FlockError
from flock_es.log.ports import EventReader, open_store, sqlite_path, store_kind
from flock_es.log.schema import check_database

from .monitor import Clock, Monitor
from .remote import RemoteServer
from .server import ViewServer
from .view_actions import ActionsMixin

__all__ = ["Folded", "LoadingMixin"]

POLL_SECONDS = 0.1  # a committed event is on screen within about this long while a run is busy
IDLE_SECONDS = 1.0  # nothing new for a while: check (one PRAGMA data_version) once a second
REDRAW_SECONDS = 0.25  # the screen is redrawn at most this often (a key's answer: at once)
KEY_BUDGET = 0.3  # after a key, an in-process fold pauses this long so the answer is drawn
MAX_YIELD = 1.0  # keys typed or held steadily still let the status move this often
HEAP_SECONDS = 30.0  # when idle, the heap is settled (collected, then frozen) at most this often


class Folded(Message):
    """The worker folded something (coalesced: at most one is queued at a time)."""


class LoadingMixin(ActionsMixin):
    """The database, the server and the worker of ``MonitorApp`` (see there)."""

    db: str
    start_run: str | None
    clock: Clock
    poll_seconds: float
    fold_in: str
    _commands: queue.SimpleQueue[tuple[str, tuple[Any, ...]]]
    _wake: threading.Event
    _posted = False
    _error = ""
    _notified = 0.0
    _owed = False  # events folded but not drawn yet (redraws are throttled)
    _busy_until = 0.0
    _heap_settled = 0.0
    _heap_dirty = True  # something was drawn since the heap was last settled
    sent_commands = 0
    _done_commands = 0  # in-process commands run so far

    def _open_server(self) -> bool:
        """Open the database if it exists yet (a missing file is waited for, not an error)."""
        if self.server is not None:
            return True
        if store_kind(self.db) == "sqlite" and not check_database(
            sqlite_path(self.db), must_exist=False
        ):
            return False
        if self.fold_in == "process":
            self.server = RemoteServer(self.db, self.start_run, self.poll_seconds)
        else:
            store = open_store(self.db, readonly=True)
            reader: EventReader = store.reader()
            self.ui_reader = store.reader()  # the UI thread's own connection (details, log rows)
            self.monitor = Monitor(reader, self.start_run, clock=self.clock)
            self.server = ViewServer(self.monitor, self.ui_reader)
        self._wake.set()
        return True

    @property
    def pending_commands(self) -> int:
        done = self.frame.commands_done if self.fold_in == "process" else self._done_commands
        return self.sent_commands - done

    @property
    def settled(self) -> bool:
        """Everything asked of the worker is done and on screen (tests wait for this)."""
        f = self.frame
        m = self.monitor
        caught_up = m.caught_up or m.run_id is None if m is not None else f.caught_up
        return (
            self.server is not None
            and f.generation >= 0  # a frame came from the server (its process has started)
            and self.pending_commands == 0
            and not self._posted
            and not self._owed
            and (caught_up or f.run_id is None)
            and (f.caught_up or f.run_id is None)
            and not f.filtering
        )

    def command(self, name: str, *args: Any) -> None:
        """Run a command of the server (follow, pause, travel, step, seek, open a run)."""
        self.sent_commands += 1
        if isinstance(self.server, RemoteServer):
            try:
                self.server.command(name, args)
            except FlockError as exc:
                self._error = str(exc)
                self.sent_commands -= 1
            return
        self._commands.put((name, args))
        self._wake.set()

    @work(thread=True, exclusive=True, group="loader")
    def _load(self) -> None:
        """Keep the server folding (or wait for its child's notes) off the UI thread."""
        worker = get_current_worker()
        quiet_since = time.monotonic()
        while not worker.is_cancelled:
            if self.server is None:
                self._wait_for_database()
                continue
            if isinstance(self.server, RemoteServer):
                if self.server.wait(IDLE_SECONDS):
                    self._yield_to_ui()  # a key's answer first, then the redraw
                    self._notify()
                continue
            self._wake.clear()
            did = self._run_commands(self.server)
            events, told = self.server.fold(self._yield_to_ui)
            if told:  # it could not read, or can again: the screen says so
                self._notify()
            # A filter's lists fill once the fold has caught up (a live run's too).
            caught_up = self.monitor is None or self.monitor.caught_up
            scanned = caught_up and self._scan(self.server)
            if events or did:
                quiet_since = time.monotonic()
                if did or time.monotonic() - self._notified > REDRAW_SECONDS:
                    self._notify()
                else:
                    self._owed = True
            if events and self.monitor is not None and not self.monitor.caught_up:
                continue
            if scanned:  # noted as the lists grow (throttled), and scanned on at once
                if time.monotonic() - self._notified > REDRAW_SECONDS:
                    self._notify()
                else:
                    self._owed = True
                continue
            if self._owed and not events:  # the last events of a burst get drawn too
                self._notify()
            idle = time.monotonic() - quiet_since > 5.0
            self._wake.wait(IDLE_SECONDS if idle else self.poll_seconds)

    def _wait_for_database(self) -> None:
        try:
            opened = self._open_server()
        except FlockError as exc:
            self._error = str(exc)
            opened = False
        if opened:
            self._notify()
        else:
            self._wake.wait(IDLE_SECONDS)
            self._wake.clear()

    def _yield_to_ui(self) -> None:
        """Sleep while the UI thread answers a key: both compete for the GIL, keys win.

        Each key pushes ``_busy_until`` on, so keys less than ``KEY_BUDGET`` apart
        (a held arrow key, steady typing in the filter) would hold the fold and the
        status line back for as long as they go on: yield ``MAX_YIELD`` at most.
        """
        give_up = time.monotonic() + MAX_YIELD
        while time.monotonic() < min(self._busy_until, give_up):
            time.sleep(0.01)
        time.sleep(0)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown | events.MouseScrollDown
                      | events.MouseScrollUp | events.Resize):  # fmt: skip
            self._busy_until = time.monotonic() + KEY_BUDGET
        await super().on_event(event)

    def _scan(self, server: ViewServer) -> bool:
        """Go on with a filter's scans (``ViewServer.scan``); True if it scanned any."""
        try:
            return server.scan(self._yield_to_ui)
        except FlockError as exc:  # e.g. the database went away: say so, keep going
            self._error = str(exc)
            return False

    def _run_commands(self, server: ViewServer) -> int:
        did = 0
        while True:
            try:
                name, args = self._commands.get_nowait()
            except queue.Empty:
                return did
            try:
                server.command(name, args)
            except FlockError as exc:  # e.g. the database went away: say so, keep going
                self._error = str(exc)
            did += 1
            self._done_commands += 1

    def _notify(self) -> None:
        self._notified = time.monotonic()
        self._owed = False
        if not self._posted:
            self._posted = True
            self.post_message(Folded())

    def on_folded(self, _: Folded) -> None:
        self._posted = False
        self._heap_dirty = True
        if not self._exit and self._running:
            self.refresh_views()

    def _tick_clock(self) -> None:
        """Once a second, and only while a run is live: elapsed times on screen move."""
        if self.server is not None and self.frame.live:
            self.refresh_views(clock_only=True)
        now = time.monotonic()
        if self._heap_dirty and now > self._busy_until + 2.0 and now > self._heap_settled:
            self.settle_heap()

    def settle_heap(self) -> None:
        """Collect the garbage, then freeze what survives (the widgets, their caches).

        A full collection walks every object the app holds: 25 to 60 ms here,
        several times a minute while a big run loads, each one a late key. Frozen,
        the long-lived objects are never walked again, so the collections that
        keys run into are of new objects only. This runs after the first paint,
        then only when nobody is typing (and at most every ``HEAP_SECONDS``):
        unfrozen first, so what became garbage since (a closed detail screen) is
        collected, not kept.
        """
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._heap_dirty = False
        self._heap_settled = time.monotonic() + HEAP_SECONDS

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "loader")
        self._wake.set()
        if isinstance(self.server, RemoteServer):
            self.server.close()
