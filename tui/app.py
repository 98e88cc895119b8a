"""The Textual app: views over a ``Monitor``, refreshed by diff on a short interval."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rich.syntax import Syntax
from textual import events, on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from flock_es.domain.events import Event, EventKind
from flock_es.log.liveness import live_status
from flock_es.log.reader import LogReader

from . import drill, rows
from .monitor import Clock, Monitor
from .rows import Filter
from .screens import DetailScreen, GotoScreen, HelpScreen
from .terminal import MIN_HEIGHT, MIN_WIDTH
from .widgets import DiffTable, LogTable, ScrubBar, Timeline

FIRST_CHUNK = 500  # events folded before the first paint
POLL_SECONDS = 0.1  # a committed event is on screen within about this long

W = TypeVar("W", bound=Widget)

VIEWS = ("runs", "agents", "tasks", "artifacts", "batches", "log", "timeline")
VIEW_TITLES = {
    "runs": "Runs",
    "agents": "Agents",
    "tasks": "In flight",
    "artifacts": "Artifacts",
    "batches": "Batches",
    "log": "Event log",
    "timeline": "Timeline",
}


class MonitorApp(App[None]):
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
        Binding("left_square_bracket", "step(-1)", "Step back", key_display="["),
        Binding("right_square_bracket", "step(1)", "Step fwd", key_display="]"),
        Binding("left_curly_bracket", "step(-10)", "Back 10", show=False, key_display="{"),
        Binding("right_curly_bracket", "step(10)", "Forward 10", show=False, key_display="}"),
        Binding("less_than_sign", "seek(0.0)", "First event", show=False, key_display="<"),
        Binding("greater_than_sign", "seek(1.0)", "Last event", show=False, key_display=">"),
        Binding("g", "goto", "Go to seq", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        db: Path,
        run_id: str | None = None,
        *,
        at: int | None = None,
        clock: Clock | None = None,
        poll_seconds: float = POLL_SECONDS,
        blink: bool = True,
    ) -> None:
        super().__init__()
        self.blink = blink
        self.db = Path(db)
        self.reader = LogReader(self.db)
        self.monitor = (
            Monitor(self.reader, run_id)
            if clock is None
            else Monitor(self.reader, run_id, clock=clock)
        )
        self.start_at = at
        self.poll_seconds = poll_seconds
        self.follow = at is None
        self.filter = Filter()
        self._generation = -1
        self._runs_seen: list[Any] = []
        self._selected_artifact: str | None = None
        self._texts: dict[str, str] = {}

    # Layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield Static(id="status")
            yield ScrubBar(id="scrub")
            with TabbedContent(initial="agents", id="views"):
                for i, view in enumerate(VIEWS, 1):
                    with TabPane(f"{i} {VIEW_TITLES[view]}", id=view):
                        yield from self._compose_view(view)
            yield Input(placeholder="filter: agent:NAME type:TYPE kind:KIND text", id="filter")
        yield Static(id="too-small")
        yield Footer()

    def _compose_view(self, view: str) -> Iterable[Any]:
        if view == "runs":
            yield DiffTable(rows.RUN_COLUMNS, id="runs-table")
        elif view == "agents":
            yield DiffTable(rows.AGENT_COLUMNS, id="agents-table")
        elif view == "tasks":
            yield DiffTable(rows.TASK_COLUMNS, id="tasks-table")
        elif view == "artifacts":
            with Horizontal():
                yield DiffTable(rows.ARTIFACT_COLUMNS, id="artifacts-table")
                with VerticalScroll(id="payload-scroll"):
                    yield Static("select an artifact", id="payload")
        elif view == "batches":
            yield DiffTable(rows.BATCH_COLUMNS, id="batches-table")
            yield Static("", id="batch-members")
        elif view == "log":
            yield LogTable(rows.LOG_COLUMNS, id="log-table", cap=self.monitor.log_cap)
        else:
            yield Timeline(id="timeline-view")

    def _q(self, selector: str, expect: type[W]) -> W:
        """Query the monitor's own screen (a help or detail screen may be on top)."""
        return self.screen_stack[0].query_one(selector, expect)

    def table(self, view: str) -> DiffTable:
        return self._q(f"#{view}-table", DiffTable)

    @property
    def view(self) -> str:
        return self._q("#views", TabbedContent).active or "agents"

    def on_mount(self) -> None:
        self._q("#filter", Input).display = False
        self._q("#filter", Input).cursor_blink = self.blink
        self._check_size()
        chunk, self.monitor.chunk = self.monitor.chunk, FIRST_CHUNK
        self.monitor.poll()  # a small first slice: paint at once, the ticks load the rest
        self.monitor.chunk = chunk
        if self.start_at is not None:
            self.monitor.travel(self.start_at)
        self.refresh_views(full=True)
        self.set_interval(self.poll_seconds, self.tick)

    # Refresh --------------------------------------------------------------

    def tick(self) -> None:
        """Poll the log and update what changed; called every ``poll_seconds``."""
        if self._exit or not self._running:
            return  # shutting down: the widgets are going away
        m = self.monitor
        events = self._catch_up()
        full = m.generation != self._generation
        if m.at is not None:
            events = []  # the live state moved; the screen stays in the past
        clock_moves = m.at is None and m.state.started_at and m.state.finished_at is None
        if events or full or clock_moves or m.runs != self._runs_seen:
            self.refresh_views(full=full, events=events)
        elif m.at is not None:
            self._status()  # the event counter of the scrub bar still grows

    def _catch_up(self, budget: float = 0.06) -> list[Event]:
        """Poll in chunks for at most ``budget`` seconds, so a large backlog never freezes keys."""
        deadline = time.perf_counter() + budget
        events = self.monitor.poll()
        while events and not self.monitor.caught_up and time.perf_counter() < deadline:
            more = self.monitor.poll()
            if not more:
                break
            events.extend(more)
        return events

    def refresh_views(self, *, full: bool = False, events: list[Event] | None = None) -> None:
        m = self.monitor
        if m.generation != self._generation:
            self._generation = m.generation
            full = True
        state = m.state
        now = m.now()
        start = state.started_at or 0.0
        self._status()
        if m.runs != self._runs_seen or full:
            self._runs_seen = list(m.runs)
            self.table("runs").sync(rows.run_rows(m.runs, self.filter))
        self.table("agents").sync(rows.agent_rows(state, self.filter))
        self.table("tasks").sync(rows.task_rows(state, now, self.filter))
        self.table("batches").sync(rows.batch_rows(state, now, self.filter))
        self._batch_members()
        arts = self.table("artifacts")
        if full:
            arts.sync(
                {
                    a.id: rows.artifact_row(a, start)
                    for a in state.artifacts.values()
                    if rows.artifact_matches(a, self.filter)
                }
            )
        elif events:
            self._append_artifacts(events, start)
        log = self._q("#log-table", LogTable)
        if full or events:
            lines = {line.seq: line for line in m.lines if rows.log_matches(line, self.filter)}
            log.show(lines, lambda line: rows.log_row(line, start))
        if self.follow and m.at is None and events:
            arts.scroll_end(animate=False)
            log.scroll_end(animate=False)
        if self.view == "timeline" or full:
            self._timeline(now)
        if self.view == "artifacts":
            self._payload()

    def _append_artifacts(self, events: list[Event], start: float) -> None:
        """The per-event path: one new row per new artifact, nothing else touched."""
        state = self.monitor.state
        new = {}
        for e in events:
            if e.kind is EventKind.ARTIFACT_PUBLISHED:
                a = state.artifacts.get(e.body["id"])
                if a is not None and rows.artifact_matches(a, self.filter):
                    new[a.id] = rows.artifact_row(a, start)
        self.table("artifacts").add(new)

    def _status(self) -> None:
        m = self.monitor
        s = m.state
        if m.run_id is None:
            self._set("#status", f" {self.db}: waiting for a run to start…")
            self._q("#scrub", ScrubBar).show("LIVE", 0, 0, 0)
            return
        status = s.finished_status or "…"
        if s.started_at and not s.finished_status and m.at is not None:
            status = "running"  # as it was at that point in time
        elif s.started_at and not s.finished_status:
            # A run nobody closed: running while its process lives, else ended or crashed.
            status = live_status(None, s.pid, s.host, s.has_pending_work(), bool(s.failed_tasks()))
        counts = s.tasks_by_status()
        totals = s.totals()
        now = m.now()
        elapsed = rows.fmt_seconds(now - s.started_at) if s.started_at else ""
        program = (s.program or "").rsplit("/", 1)[-1]
        flt = f" · filter: {self._filter_text}" if self.filter else ""
        follow = " · follow" if self.follow else ""
        self._set(
            "#status",
            f" [b]{m.run_id}[/b] {program} · {status} {elapsed} · {s.model} · "
            f"{counts['running']} running {counts['scheduled']} waiting "
            f"{counts['completed']} done {counts['failed']} failed · "
            f"{len(s.artifacts)} artifacts · {totals['tokens_in'] + totals['tokens_out']} tok · "
            f"{rows.fmt_cost(totals['cost'])}{follow}{flt}",
        )
        mode = "LIVE" if m.at is None else self._travel_mode
        self._q("#scrub", ScrubBar).show(mode, m.position, m.index, len(m.seqs))

    _filter_text = ""

    def _set(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed (a repaint per tick is wasted work)."""
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            self._q(selector, Static).update(text)

    _travel_mode = "TIME TRAVEL"

    def _timeline(self, now: float) -> None:
        s = self.monitor.state
        spans = rows.timeline(s, now, self.filter)
        t0 = s.started_at or (spans[0].start if spans else 0.0)
        t1 = max([now, *(sp.end for sp in spans)]) if spans else now
        self._q("#timeline-view", Timeline).show(spans, t0, t1)

    def _batch_members(self) -> None:
        s = self.monitor.state
        parts = []
        for (agent, sub), b in sorted(s.batches.items()):
            types = [s.artifacts[i].type if i in s.artifacts else "?" for i in b.members]
            producers = [s.artifacts[i].produced_by if i in s.artifacts else "?" for i in b.members]
            parts.append(
                f"[b]{agent}[{sub}][/b] holds {len(b.members)}"
                + (f" of {b.size}" if b.size else "")
                + ": "
                + ", ".join(f"{t} from {p}" for t, p in zip(types, producers, strict=True))
            )
        self._set("#batch-members", "\n".join(parts) or "no batch is filling")

    def _payload(self) -> None:
        key = self.table("artifacts").selected_key
        if key == self._selected_artifact:
            return
        self._selected_artifact = key
        a = self.monitor.state.artifacts.get(key or "")
        widget = self._q("#payload", Static)
        if a is None:
            widget.update("select an artifact")
            return
        text = json.dumps(a.payload, indent=2, ensure_ascii=False)
        widget.update(
            Syntax(f"// {a.type} {a.id}\n{text}", "json", word_wrap=True, theme="ansi_dark")
        )

    @on(DataTable.RowHighlighted, "#artifacts-table")
    def _artifact_highlighted(self) -> None:
        self._payload()

    # Size ----------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, w: int | None = None, h: int | None = None) -> None:
        if w is None or h is None:
            w, h = self.size
        small = w < MIN_WIDTH or h < MIN_HEIGHT
        self._q("#main", Widget).display = not small
        msg = self._q("#too-small", Static)
        msg.display = small
        msg.update(
            f"terminal too small: {w}x{h}; flock-es tui needs at least {MIN_WIDTH}x{MIN_HEIGHT}"
        )

    # Actions --------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(list(self.BINDINGS)))

    def action_filter(self) -> None:
        box = self._q("#filter", Input)
        box.display = True
        box.value = self._filter_text
        box.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.set_filter(event.value)
        event.input.display = False
        self._focus_view()

    def set_filter(self, text: str) -> None:
        """Filter every view (``agent:NAME``, ``type:TYPE``, ``kind:KIND``, words)."""
        self._filter_text = text.strip()
        self.filter = Filter.parse(text)
        self.table("artifacts").rebuild(
            {
                a.id: rows.artifact_row(a, self.monitor.state.started_at or 0.0)
                for a in self.monitor.state.artifacts.values()
                if rows.artifact_matches(a, self.filter)
            }
        )
        self.refresh_views(full=True)

    def action_follow(self) -> None:
        """Follow: back to live, newest rows in view, switch to new runs."""
        self.follow = not self.follow or self.monitor.at is not None
        if self.follow:
            self.monitor.travel(None)
            self.refresh_views(full=True)
            self.table("log").scroll_end(animate=False)
        self._status()

    def action_pause(self) -> None:
        """Pause: freeze the screen at the current seq (new events still get folded)."""
        m = self.monitor
        if m.at is None:
            m.travel(m.cursor)
            self._travel_mode = "PAUSED"
            self.follow = False
        else:
            m.travel(None)
        self.refresh_views(full=True)

    def action_step(self, n: int) -> None:
        """Step ``n`` events through the run (time travel)."""
        self.follow = False
        self._travel_mode = "TIME TRAVEL"
        forward = self.monitor.step(n)
        self.refresh_views(full=not forward, events=forward)

    def action_seek(self, fraction: float) -> None:
        self.follow = False
        self._travel_mode = "TIME TRAVEL"
        self.monitor.seek_fraction(fraction)
        self.refresh_views(full=True)

    @on(ScrubBar.Scrub)
    def _scrub(self, event: ScrubBar.Scrub) -> None:
        self.action_seek(event.fraction)

    def action_goto(self) -> None:
        def done(seq: int | None) -> None:
            if seq == GotoScreen.CANCEL:
                return
            self.travel_to(seq)

        self.push_screen(GotoScreen(), done)

    def travel_to(self, seq: int | None) -> None:
        """Show the run at ``seq`` (None: live)."""
        self.follow = seq is None
        self._travel_mode = "TIME TRAVEL"
        self.monitor.travel(seq)
        self.refresh_views(full=True)

    def action_next_view(self) -> None:
        self._cycle(1)

    def action_prev_view(self) -> None:
        self._cycle(-1)

    def _cycle(self, d: int) -> None:
        if isinstance(self.screen, HelpScreen | DetailScreen | GotoScreen):
            return
        i = VIEWS.index(self.view)
        self.action_view(VIEWS[(i + d) % len(VIEWS)])

    def action_view(self, view: str) -> None:
        self._q("#views", TabbedContent).active = view
        self.refresh_views()
        self._focus_view()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self) -> None:
        self.refresh_views()

    def _focus_view(self) -> None:
        view = self.view
        target = self._q("#timeline-view", Widget) if view == "timeline" else self.table(view)
        target.focus()

    def action_go_back(self) -> None:
        box = self._q("#filter", Input)
        if box.display:
            box.display = False
            self._focus_view()
        elif self.filter:
            self.set_filter("")
        elif self.view != "agents":
            self.action_view("agents")

    def action_drill(self) -> None:
        """Open what is selected: a run, an agent, a task, an artifact's payload, an event."""
        view = self.view
        if view == "timeline":
            return
        key = self.table(view).selected_key
        if key is None:
            return
        if view == "runs":
            self._open_run(key)
            self.action_view("agents")
            return
        seq = self._q("#log-table", LogTable).seq_at_cursor() if view == "log" else None
        found = drill.detail(view, key, self.monitor.state, self.reader, seq)
        if found is not None:
            self.push_screen(DetailScreen(*found))

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_drill()

    # Command palette ---------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for view in VIEWS:
            yield SystemCommand(
                f"View: {VIEW_TITLES[view]}",
                f"Show the {view} view",
                lambda v=view: self.action_view(v),
            )
        yield SystemCommand("Follow live", "Back to live, follow new events", self.action_follow)
        yield SystemCommand("Pause", "Freeze the screen at the current seq", self.action_pause)
        yield SystemCommand("Go to seq…", "Time travel to a seq", self.action_goto)
        yield SystemCommand(
            "First event", "Time travel to the run's first event", lambda: self.action_seek(0.0)
        )
        yield SystemCommand("Clear filter", "Show everything", lambda: self.set_filter(""))
        for r in self.monitor.runs[-20:]:
            yield SystemCommand(
                f"Open run {r.run_id}",
                f"{(r.program or '').rsplit('/', 1)[-1]} · {r.status}",
                lambda rid=r.run_id: self._open_run(rid),
            )

    def _open_run(self, run_id: str) -> None:
        self.monitor.switch_run(run_id, follow_latest=False)
        self._catch_up()
        self.follow = True
        self.refresh_views(full=True)

    def on_unmount(self) -> None:
        self.reader.close()
