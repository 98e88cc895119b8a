"""The Textual app: views over a ``Monitor`` that a worker thread keeps folding.

Reading and folding happen off the UI thread (``_load``, a Textual thread
worker); the worker posts one coalesced ``Folded`` message at a time and the
UI redraws aggregates (agent lanes, counts) and the windows of its virtual
lists that are on screen. Keys never wait for the fold of a large log.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import events, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from flock_es.errors import FlockError
from flock_es.log.ports import EventReader, open_store, sqlite_path, store_kind
from flock_es.log.schema import check_database

from . import rows
from .monitor import Clock, Monitor
from .sources import ArtifactSource, FailureSource, LogSource, TaskSource, TimelineSource
from .view_actions import ActionsMixin
from .vlist import VirtualList
from .widgets import DiffTable, ScrubBar, Timeline

__all__ = ["VIEWS", "VIEW_TITLES", "MonitorApp"]

KEY_BAR = (
    " [b]q[/b] Quit  [b]?[/b] Help  [b]/[/b] Filter  [b]f[/b] Follow  [b]p[/b] Pause  "
    "[b]1-8[/b] Views  [b]enter[/b] Open  [b][ ][/b] Step  [b]^p[/b] Commands"
)
"""The key bar. A static line, not Textual's Footer: the Footer recomposes on every
focus change, which doubled the cost of switching views. ``q Quit`` comes first,
so it is visible at 80 columns."""

POLL_SECONDS = 0.1  # a committed event is on screen within about this long while a run is busy
IDLE_SECONDS = 1.0
REDRAW_SECONDS = 0.25  # the screen is redrawn at most this often (a key's answer: at once)
KEY_BUDGET = 0.3  # after a key, the fold pauses this long so the answer is drawn at once  # nothing new for a while: check (one PRAGMA data_version) once a second

VIEWS = ("runs", "agents", "tasks", "artifacts", "batches", "log", "timeline", "failures")
VIEW_TITLES = {
    "runs": "Runs",
    "agents": "Agents",
    "tasks": "Tasks",
    "artifacts": "Artifacts",
    "batches": "Batches",
    "log": "Event log",
    "timeline": "Timeline",
    "failures": "Failures",
}


class Folded(Message):
    """The worker folded something (coalesced: at most one is queued at a time)."""


class MonitorApp(ActionsMixin):
    """``flock-es tui``: watch a run live, or travel through its events.

    Example::

        app = MonitorApp(Path("data/flock-es.db"))          # latest run, live
        app = MonitorApp(db, run_id="r-2026...", at=42)     # that run at seq 42
        app.run()

    ``clock`` gives "now" for live elapsed times; tests pass a frozen one.
    """

    CSS_PATH = "monitor.tcss"
    TITLE = "flock-es tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("f", "follow", "Follow"),
        Binding("p", "pause", "Pause"),
        Binding("tab", "next_view", "Next view", priority=True),
        Binding("shift+tab", "prev_view", "Previous view", show=False, priority=True),
        *(
            Binding(str(i), f"view('{v}')", VIEW_TITLES[v], show=False)
            for i, v in enumerate(VIEWS, 1)
        ),
        Binding("enter", "drill", "Open", show=False),
        Binding("escape", "go_back", "Back", show=False),
        Binding("left_square_bracket", "step(-1)", "Step back", show=False, key_display="["),
        Binding("right_square_bracket", "step(1)", "Step fwd", show=False, key_display="]"),
        Binding("left_curly_bracket", "step(-10)", "Back 10", show=False, key_display="{"),
        Binding("right_curly_bracket", "step(10)", "Forward 10", show=False, key_display="}"),
        Binding("less_than_sign", "seek(0.0)", "First event", show=False, key_display="<"),
        Binding("greater_than_sign", "seek(1.0)", "Last event", show=False, key_display=">"),
        Binding("g", "goto", "Go to event", show=False),
        Binding("m", "task_mode", "Tasks: in flight/all/failed", show=False),
        Binding("s", "sort_runs", "Sort runs", show=False),
        Binding("R", "run_action('resume')", "Resume run", show=False),
        Binding("T", "run_action('retry')", "Resume, retry failed", show=False),
        Binding("Y", "run_action('replay')", "Replay run", show=False),
        Binding("F", "run_action('fork')", "Fork here", show=False),
        Binding("E", "run_action('export')", "Export run", show=False),
    ]

    def __init__(
        self,
        db: str | Path,
        run_id: str | None = None,
        *,
        at: int | None = None,
        clock: Clock | None = None,
        poll_seconds: float = POLL_SECONDS,
        blink: bool = True,
    ) -> None:
        super().__init__()
        # The tab underline's slide is the only animation; a key's answer should not wait for it.
        self.animation_level = "none"
        self.blink = blink
        self.db = str(db)
        self.start_run = run_id
        self.clock: Clock = clock or time.time
        self.monitor: Monitor | None = None
        self.ui_reader: EventReader | None = None
        self.start_at = at
        self.poll_seconds = poll_seconds
        self.follow = at is None
        self.filter = rows.Filter()
        self.task_mode = "flight"
        self.run_sort = "started"
        self.run_stats: dict[str, dict[str, Any]] = {}
        self._commands: queue.SimpleQueue[Callable[[Monitor], object]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._posted = False
        self._generation = -1
        self._texts: dict[str, str] = {}
        self._open_monitor()

    # Opening the log ---------------------------------------------------------

    def _open_monitor(self) -> bool:
        """Open the database if it exists yet (a missing file is waited for, not an error)."""
        if self.monitor is not None:
            return True
        if store_kind(self.db) == "sqlite" and not check_database(
            sqlite_path(self.db), must_exist=False
        ):
            return False
        store = open_store(self.db, readonly=True)
        reader = store.reader()
        self.ui_reader = store.reader()  # the UI thread's own connection (details, log rows)
        self.monitor = Monitor(reader, self.start_run, clock=self.clock)
        self._wake.set()
        return True

    @property
    def m(self) -> Monitor:
        assert self.monitor is not None, "no database yet"
        return self.monitor

    # Layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield Static(id="status")
            yield Static(id="banner")
            yield Static(id="limits")  # the models' rate limiters, when the run has any
            yield ScrubBar(id="scrub")
            with TabbedContent(initial="agents", id="views"):
                for i, view in enumerate(VIEWS, 1):
                    with TabPane(f"{i} {VIEW_TITLES[view]}", id=view):
                        yield from self._compose_view(view)
            yield Input(
                placeholder="filter: agent:NAME type:TYPE kind:KIND status:S text", id="filter"
            )
        yield Static(id="too-small")
        yield Static(KEY_BAR, id="keys")

    def _compose_view(self, view: str) -> Iterable[Widget]:
        if view == "runs":
            yield DiffTable(rows.RUN_COLUMNS, id="runs-table")
        elif view == "agents":
            yield DiffTable(rows.AGENT_COLUMNS, id="agents-table")
            yield Static("", id="recent")
        elif view == "tasks":
            yield Static("", id="tasks-mode")
            yield VirtualList(_Lazy(TaskSource), id="tasks-list")
        elif view == "artifacts":
            with Horizontal():
                yield VirtualList(_Lazy(ArtifactSource), id="artifacts-list")
                with VerticalScroll(id="payload-scroll"):
                    yield Static("select an artifact", id="payload")
        elif view == "batches":
            yield DiffTable(rows.BATCH_COLUMNS, id="batches-table")
            yield Static("", id="batch-members")
        elif view == "log":
            yield VirtualList(_Lazy(LogSource), id="log-list")
        elif view == "timeline":
            yield Timeline(_Lazy(TimelineSource), id="timeline-view")
        else:
            yield VirtualList(_Lazy(FailureSource), id="failures-list")

    def on_mount(self) -> None:
        self._q("#filter", Input).display = False
        self._q("#filter", Input).cursor_blink = self.blink
        self._q("#banner", Static).display = False
        self._q("#limits", Static).display = False
        self._check_size()
        if self.monitor is not None:
            self.monitor.chunk, chunk = 500, self.monitor.chunk
            self.monitor.poll()  # a small first slice: paint at once, the worker folds the rest
            self.monitor.chunk = chunk
            if self.start_at is not None:
                self.monitor.travel(self.start_at)
            self._attach_sources()
        self.refresh_views(full=True)
        self._load()
        self.set_interval(1.0, self._tick_clock)

    # The worker ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="loader")
    def _load(self) -> None:
        """Fold the log off the UI thread; sleep between checks, longer when idle."""
        worker = get_current_worker()
        quiet_since = time.monotonic()
        while not worker.is_cancelled:
            if self.monitor is None:
                try:
                    opened = self._open_monitor()
                except FlockError as exc:
                    self._error = str(exc)
                    opened = False
                if opened:
                    self.call_from_thread(self._attach_sources)
                    self._notify()
                else:
                    self._wake.wait(IDLE_SECONDS)
                    self._wake.clear()
                    continue
            m = self.m
            self._wake.clear()
            did = self._run_commands(m)
            events = m.poll(self._yield_to_ui)
            if events or did:
                quiet_since = time.monotonic()
                if did or time.monotonic() - self._notified > REDRAW_SECONDS:
                    self._notify()
                else:
                    self._owed = True
            self.pending_commands -= did
            if events and not m.caught_up:
                continue
            if self._owed and not events:  # the last events of a burst get drawn too
                self._notify()
            idle = time.monotonic() - quiet_since > 5.0
            self._wake.wait(IDLE_SECONDS if idle else self.poll_seconds)

    _error = ""
    _notified = 0.0
    pending_commands = 0
    _owed = False  # events folded but not drawn yet (redraws are throttled)

    @property
    def settled(self) -> bool:
        """Everything asked of the worker is done and on screen (tests wait for this)."""
        m = self.monitor
        return (
            m is not None
            and self.pending_commands == 0
            and not self._posted
            and not self._owed
            and (m.caught_up or m.run_id is None)
        )

    _busy_until = 0.0

    def _yield_to_ui(self) -> None:
        """Sleep while the UI thread answers a key: both compete for the GIL, keys win."""
        while time.monotonic() < self._busy_until:
            time.sleep(0.01)
        time.sleep(0)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown | events.MouseScrollDown
                      | events.MouseScrollUp | events.Resize):  # fmt: skip
            self._busy_until = time.monotonic() + KEY_BUDGET
        await super().on_event(event)

    def _run_commands(self, m: Monitor) -> int:
        did = 0
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return did
            try:
                cmd(m)
            except FlockError as exc:  # e.g. the database went away: say so, keep going
                self._error = str(exc)
            did += 1

    def command(self, cmd: Callable[[Monitor], object]) -> None:
        """Run ``cmd(monitor)`` on the worker (switch run, travel); the screen follows."""
        self.pending_commands += 1
        self._commands.put(cmd)
        self._wake.set()

    def _notify(self) -> None:
        self._notified = time.monotonic()
        self._owed = False
        if not self._posted:
            self._posted = True
            self.post_message(Folded())

    def on_folded(self, _: Folded) -> None:
        self._posted = False
        if not self._exit and self._running:
            self.refresh_views()

    def _tick_clock(self) -> None:
        """Once a second, and only while a run is live: elapsed times on screen move."""
        if self.monitor is not None and self.monitor.is_live():
            self.refresh_views(clock_only=True)

    def _attach_sources(self) -> None:
        for lazy in self.query(VirtualList).results():
            if isinstance(lazy.source, _Lazy):
                lazy.set_source(lazy.source.build(self))
        timeline = self._q("#timeline-view", Timeline)
        if isinstance(timeline.source, _Lazy):
            timeline.source = timeline.source.build(self)

    # Command palette ---------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for view in VIEWS:
            yield SystemCommand(
                f"View: {VIEW_TITLES[view]}",
                f"Show the {view} view",
                lambda v=view: self.action_view(v),
            )
        yield SystemCommand("Follow live", "Back to live, follow new runs", self.action_follow)
        yield SystemCommand("Pause", "Freeze the screen at the current event", self.action_pause)
        yield SystemCommand("Go to event…", "Time travel to event N", self.action_goto)
        yield SystemCommand(
            "First event", "Travel to the first event", lambda: self.action_seek(0.0)
        )
        yield SystemCommand("Clear filter", "Show everything", lambda: self.set_filter(""))
        for action, title in (("resume", "Resume run"), ("retry", "Resume, retry failed"),
                              ("replay", "Replay run"), ("fork", "Fork at this event"),
                              ("export", "Export run")):  # fmt: skip
            yield SystemCommand(title, f"flock-es {action} (asks first)",
                                lambda a=action: self.action_run_action(a))  # fmt: skip
        for r in reversed(self.monitor.runs if self.monitor else []):
            yield SystemCommand(
                f"Open run {r.run_id}",
                f"{(r.program or '').rsplit('/', 1)[-1]} · {r.status}",
                lambda rid=r.run_id: self.open_run(rid),
            )

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "loader")
        self._wake.set()


class _Lazy:
    """A source to build once the database exists (``flock-es tui`` may start before it)."""

    columns: tuple[str, ...] = ()

    def __init__(self, kind: type[Any]) -> None:
        self.kind = kind
        # TaskSource's columns depend on the run (a property): its fixed ones until built.
        fixed: tuple[str, ...] = getattr(kind, "COLUMNS", ())
        self.columns = fixed or getattr(kind, "columns", ())

    def build(self, app: MonitorApp) -> Any:
        if self.kind is LogSource:
            assert app.ui_reader is not None
            return LogSource(app.m, app.ui_reader, app.filter)
        if self.kind is TaskSource:
            return TaskSource(app.m, app.filter, app.task_mode)
        return self.kind(app.m, app.filter)

    def count(self) -> int:
        return 0

    def rows(self, start: int, count: int) -> list[Any]:
        return []

    def spans(self, start: int, count: int, now: float) -> list[Any]:
        return []
