"""Drawing of the monitor: the half of the app that runs on the UI thread.

Everything here draws a ``Frame`` from the ``ViewServer`` and touches only
what is on screen: the status line, the banner, the agent lanes (one row per agent), the
small tables, and the visible window of the active virtual list. The keys that
switch, filter and sort the views are ``tui/view_navigation.py``'s.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, TypeVar

from rich.markup import escape
from rich.syntax import Syntax
from textual import events, on
from textual.app import App
from textual.css.query import NoMatches
from textual.visual import visualize
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Static

from flock_es.domain.events import RunStatus
from flock_es.errors import FlockError
from flock_es.log.ports import EventReader

from . import rows
from .bounded import PANE, bounded
from .monitor import Clock, Monitor
from .server import Frame, ViewRequest, ViewServer
from .terminal import MIN_HEIGHT, MIN_WIDTH
from .vlist import VirtualList
from .widgets import DiffTable, ScrubBar, Timeline

if TYPE_CHECKING:
    from .remote import RemoteServer

__all__ = ["LISTS", "ViewMixin"]

W = TypeVar("W", bound=Widget)
LISTS = {"tasks", "artifacts", "log", "failures"}


class ViewMixin(App[None]):
    """Queries, refresh and drawing of ``MonitorApp`` (see there)."""

    db: str
    monitor: Monitor | None
    ui_reader: EventReader | None
    server: ViewServer | RemoteServer | None
    frame: Frame
    clock: Clock
    follow: bool
    filter: rows.Filter
    task_mode: str
    run_sort: str
    run_stats: dict[str, dict[str, Any]]
    _generation: int
    _texts: dict[str, str]
    _filter_text = ""
    _payload_shown: tuple[str, int] | None = None
    _travel_mode = "TIME TRAVEL"
    _error: str

    if TYPE_CHECKING:

        def command(self, name: str, *args: Any) -> None: ...

    @property
    def served_by(self) -> ViewServer | RemoteServer | None:
        """The server the lists ask for their rows."""
        return self.server

    def request(self) -> ViewRequest:
        """What the screen shows now: the server answers for that."""
        try:
            agent = self.table("agents").selected_key
            view = self.view
        except NoMatches:  # not composed yet
            agent, view = None, "agents"
        return ViewRequest(self.filter, self.task_mode, view, agent)

    # Queries --------------------------------------------------------------

    def _q(self, selector: str, expect: type[W]) -> W:
        """Query the monitor's own screen (a help or detail screen may be on top).

        NoMatches once the app has closed its screens: a message posted by the last
        redraw (a list's ``Highlighted``) can still be handled while the app quits.
        """
        if not self.screen_stack:
            raise NoMatches(f"no screen to query for {selector}: the app is closing")
        return self.screen_stack[0].query_one(selector, expect)

    def table(self, view: str) -> DiffTable:
        return self._q(f"#{view}-table", DiffTable)

    def vlist(self, view: str) -> VirtualList:
        return self._q(f"#{view}-list", VirtualList)

    @property
    def view(self) -> str:
        return self._q("#views", ContentSwitcher).current or "agents"

    # Refresh --------------------------------------------------------------

    def refresh_views(self, *, full: bool = False, clock_only: bool = False) -> None:
        with contextlib.suppress(NoMatches):  # the app is closing: its widgets are gone
            self._refresh(full, clock_only)

    def _refresh(self, full: bool, clock_only: bool) -> None:
        if self.server is None:
            self._set("#status", f" {self.db}: waiting for a database… {self._error}")
            return
        if not getattr(self.server, "ready", True):  # the fold process is starting
            self._set("#status", f" {self.db}: opening…")
            return
        try:
            f = self.frame = self.server.frame(self.request())
        except FlockError as exc:  # e.g. the database went away: say so, keep going
            self._error = str(exc)
            self._set("#status", f" {self.db}: {self._error}")
            return
        if f.generation != self._generation:
            self._generation = f.generation
            full = True
            for vl in self.query(VirtualList).results():
                vl.move_to(0)  # another run: start at its top (follow moves to its end)
        self._status(f)
        view = self.view
        if not clock_only or full:
            if full or view == "runs":
                self._runs(full)
            agents = self.table("agents")
            agents.rebuild(f.agents) if full else agents.sync(f.agents)
            self._set("#recent", "\n".join(f.recent))
            self.table("batches").sync(f.batches)
            self._set("#batch-members", f.batch_members)
        for name in LISTS:
            vl = self.vlist(name)
            vl.stick_to_end = self.follow and f.at is None and name in ("artifacts", "log")
            if name == view or full:
                vl.invalidate()
        self._draw_view(view, full)

    def _draw_view(self, view: str, full: bool = False) -> None:
        """The parts of ``view`` that only it shows (the lists are invalidated by the caller)."""
        f = self.frame
        if view == "tasks":
            mode = {"flight": "in flight", "all": "all tasks", "failed": "failed tasks"}
            self._set("#tasks-mode", f" {mode[self.task_mode]} (m: in flight / all / failed)")
        if view == "timeline" or full:
            tl = self._q("#timeline-view", Timeline)
            tl.show(f.started_at or f.now, max(f.now, f.last_ts))

    def _show_view(self, view: str) -> None:
        """Switched to ``view``: draw it from the frame in hand, without asking the server
        (the next note of the fold brings a new frame; a key should not wait for one)."""
        if self.frame.generation < 0 or self.frame.generation != self._generation:
            self.refresh_views()
            return
        with contextlib.suppress(NoMatches):
            if view in LISTS:
                self.vlist(view).invalidate()
                self.vlist(view).prefetch()
            elif view == "runs":
                self._runs(False)
            self._draw_view(view)

    def _runs(self, full: bool) -> None:
        table = self.table("runs")
        f = self.frame
        desired = rows.run_rows(f.runs, self.run_stats, self.clock(), self.filter, self.run_sort)
        if full or list(desired) != list(table.rows_by_key):
            table.rebuild(desired)
        else:
            table.sync(desired)

    def _status(self, f: Frame) -> None:
        self._limits(f.limiters if f.run_id is not None else {})
        if f.run_id is None:
            why = f.trouble or self._error
            self._set("#status", f" {self.db}: waiting for a run to start… {escape(why)}")
            self._q("#scrub", ScrubBar).show("LIVE", 0, 0, 0)
            return
        status, counts = f.status, f.counts
        elapsed = rows.fmt_seconds(f.now - f.started_at) if f.started_at else ""
        bad = status in (RunStatus.FAILED.value, RunStatus.INTERRUPTED.value)
        shown = f"[b red]✗ {status}[/]" if bad else f"[b]{status}[/b]"
        failed = f"[b red]✗ {counts['failed']} failed[/]" if counts["failed"] else "0 failed"
        follow = " · [b]following newest run[/b]" if self.follow and f.follow_latest else ""
        if not f.follow_latest:
            follow = " · [b]this run[/b] (f: follow newest)"
        flt = f" · filter: {escape(self._filter_text)}" if self.filter else ""
        if self.filter and f.filtering:
            flt += " (searching…)"
        self._set(
            "#status",
            f" [b]{f.run_id}[/b] {escape(f.program)} · {shown} {elapsed} · "
            f"{counts['running']} running {counts['scheduled']} waiting "
            f"{counts['completed']} done {failed} · {f.artifacts} artifacts · "
            f"{rows.fmt_cost(f.cost)}{follow}{flt}",
        )
        self._banner(f, counts["failed"])
        mode = "LIVE" if f.at is None else self._travel_mode
        if f.rebuilding is not None:  # going back: the run is folded again up to there
            done, total = f.rebuilding
            mode = f"REWIND {100 * done // max(total, 1)}%"
        self._q("#scrub", ScrubBar).show(mode, f.position, f.ordinal, f.total)

    def _limits(self, limiters: dict[str, dict[str, Any]]) -> None:
        """One line of the models' rate limiters, shown only when the run has any."""
        text = rows.limiter_line(limiters)
        self._q("#limits", Static).display = bool(text)
        self._set("#limits", f" models: {text}" if text else "")

    def _banner(self, f: Frame, failed: int) -> None:
        banner = self._q("#banner", Static)
        run = f.run_id
        text = ""
        if f.trouble:
            text = f" ✗ {escape(f.trouble)} · showing what was read before; trying again"
        elif f.status == RunStatus.INTERRUPTED.value:
            text = (
                f" ✗ INTERRUPTED: run {run}'s process is gone with work left. "
                f"R: flock-es resume {run} · F: flock-es fork {run} --at SEQ"
            )
        elif failed and f.at is None and f.caught_up:
            text = (
                f" ✗ {failed} TASK(S) FAILED (8: failures view). T: flock-es resume {run} "
                f"--retry-failed · F: fork at the current event"
            )
        elif any(f.trips) and f.at is None and f.caught_up:
            text = _trips_banner(f)
        banner.display = bool(text)
        self._set("#banner", text)

    def _set(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed (a repaint per tick is wasted work),
        and lay the screen out again only when its height changed: a new status line
        every redraw re-laid out every widget, most of a redraw's cost."""
        old = self._texts.get(selector)
        if old == text:
            return
        self._texts[selector] = text
        widget = self._q(selector, Static)
        width = widget.content_region.width
        same = (
            old is not None
            and width > 0
            and _height(widget, old, width) == _height(widget, text, width)
        )
        widget.update(text, layout=not same)

    def _payload(self) -> None:
        key = self.vlist("artifacts").selected_key
        widget = self._q("#payload", Static)
        if self.server is None or key is None:
            widget.update("select an artifact")
            self._payload_shown = None
            return
        try:
            a, consumers = self.server.artifact(key)
        except FlockError:
            return
        if a is None or (key, consumers) == self._payload_shown:
            return  # following a run re-selects the newest row: highlight it once
        self._payload_shown = (key, consumers)
        # Cut (``bounded``): a document-sized payload laid out whole held the screen for
        # seconds at each selection; enter opens more of it, and says where all of it is.
        shown, cut = bounded(a.payload, PANE)
        text = json.dumps(shown, indent=2, ensure_ascii=False, default=str)
        head = f"// {a.type} {a.id} by {a.produced_by}, consumed by {consumers} task(s)\n"
        if cut:
            head += "// long text and lists cut here: enter shows more\n"
        widget.update(Syntax(head + text, "json", word_wrap=True, theme="ansi_dark"))

    @on(VirtualList.Highlighted, "#artifacts-list")
    def _artifact_highlighted(self) -> None:
        with contextlib.suppress(NoMatches):  # the app is closing: its widgets are gone
            self._payload()

    @on(VirtualList.Highlighted, "#agents-table")
    def _agent_highlighted(self) -> None:
        with contextlib.suppress(NoMatches):  # the app is closing: its widgets are gone
            if self.server is not None and self.view == "agents":
                self.refresh_views(clock_only=True)
                self._set("#recent", "\n".join(self.frame.recent))

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


def _height(widget: Widget, text: str, width: int) -> int:
    """Lines that ``text`` takes in ``widget`` at ``width`` (wrapped as Textual wraps it)."""
    # Widget.get_content_height passes its styles the same way (typed as a RulesMap).
    return visualize(widget, text).get_height(widget.styles, width)  # type: ignore[arg-type]


def _trips_banner(f: Frame) -> str:
    """The circuit breaker refused work: a loop stopped at ``max_depth``, or an agent at
    ``max_agent_iterations`` (the event log says which matches; ``show`` lists them)."""
    counted, deep = f.trips
    parts = []
    if deep:
        parts.append(f"{deep} match(es) refused: a chain of {f.max_depth} agent runs (max_depth)")
    if counted:
        parts.append(f"{counted} match(es) refused by max_agent_iterations")
    return f" ⚠ CIRCUIT BREAKER: {' · '.join(parts)} (6: event log)"
