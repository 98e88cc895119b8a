"""The Textual app: views over a ``ViewServer`` that folds the log off the UI thread.

By default the fold runs in a child process (``tui/remote.py``) and the UI asks
it for what is on screen: aggregates (agent lanes, counts) and the windows of
its virtual lists. The worker posts one coalesced ``Folded`` message at a time
(``tui/loading.py``). Keys never wait for the fold of a large log.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, Static

from flock_es.log.ports import EventReader

from . import rows
from .loading import POLL_SECONDS, LoadingMixin
from .monitor import Clock, Monitor
from .remote import RemoteServer
from .served import ServedList, ServedTimeline
from .server import Frame, ViewServer
from .vlist import VirtualList
from .widgets import DiffTable, ScrubBar, Timeline, ViewTabs

__all__ = ["VIEWS", "VIEW_TITLES", "MonitorApp"]

KEY_BAR = (
    " [b]q[/b] Quit  [b]?[/b] Help  [b]/[/b] Filter  [b]f[/b] Follow  [b]p[/b] Pause  "
    "[b]1-8[/b] Views  [b]enter[/b] Open  [b][ ][/b] Step  [b]^p[/b] Commands"
)
"""The key bar. A static line, not Textual's Footer: the Footer recomposes on every
focus change, which doubled the cost of switching views. ``q Quit`` comes first,
so it is visible at 80 columns."""

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


class MonitorApp(LoadingMixin):
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
        fold_in: str | None = None,
    ) -> None:
        super().__init__()
        # The tab underline's slide is the only animation; a key's answer should not wait for it.
        self.animation_level = "none"
        self.blink = blink
        self.db = str(db)
        self.start_run = run_id
        self.clock: Clock = clock or time.time
        # A clock cannot cross a process boundary: a frozen one folds in this process.
        self.fold_in = fold_in or ("thread" if clock is not None else "process")
        self.monitor: Monitor | None = None
        self.ui_reader: EventReader | None = None
        self.server: ViewServer | RemoteServer | None = None
        self.frame = Frame()
        self.start_at = at
        self.poll_seconds = poll_seconds
        self.follow = at is None
        self.filter = rows.Filter()
        self.task_mode = "flight"
        self.run_sort = "started"
        self.run_stats: dict[str, dict[str, Any]] = {}
        self._commands: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._generation = -1
        self._texts: dict[str, str] = {}
        self._open_server()

    # Layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield Static(id="status")
            yield Static(id="banner")
            yield Static(id="limits")  # the models' rate limiters, when the run has any
            yield ScrubBar(id="scrub")
            yield ViewTabs(VIEW_TITLES, id="tabs")
            with ContentSwitcher(initial="agents", id="views"):
                for view in VIEWS:
                    with Vertical(id=view):
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
            yield VirtualList(ServedList(self, "tasks"), id="tasks-list")
        elif view == "artifacts":
            with Horizontal():
                yield VirtualList(ServedList(self, "artifacts"), id="artifacts-list")
                with VerticalScroll(id="payload-scroll"):
                    yield Static("select an artifact", id="payload")
        elif view == "batches":
            yield DiffTable(rows.BATCH_COLUMNS, id="batches-table")
            yield Static("", id="batch-members")
        elif view == "log":
            yield VirtualList(ServedList(self, "log"), id="log-list")
        elif view == "timeline":
            yield Timeline(ServedTimeline(self), id="timeline-view")
        else:
            yield VirtualList(ServedList(self, "failures"), id="failures-list")

    def on_mount(self) -> None:
        self._q("#filter", Input).display = False
        self._q("#filter", Input).cursor_blink = self.blink
        self._q("#banner", Static).display = False
        self._q("#limits", Static).display = False
        self._q("#tabs", ViewTabs).show("agents")
        self._check_size()
        if self.monitor is not None:  # in-process: a small first slice, painted at once
            self.monitor.chunk, chunk = 500, self.monitor.chunk
            self.monitor.poll()
            self.monitor.chunk = chunk
            if self.start_at is not None:
                self.monitor.travel(self.start_at)
        elif self.start_at is not None and self.server is not None:
            self.command("travel", self.start_at)
        self.refresh_views(full=True)
        self._load()
        self.set_interval(1.0, self._tick_clock)
        self.call_after_refresh(self.settle_heap)  # the first paint's objects: long-lived

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
        for r in reversed(self.frame.runs):
            yield SystemCommand(
                f"Open run {r.run_id}",
                f"{(r.program or '').rsplit('/', 1)[-1]} · {r.status}",
                lambda rid=r.run_id: self.open_run(rid),
            )
