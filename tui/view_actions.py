"""Keys that move through time, open objects, switch runs and start actions."""

from __future__ import annotations

import tempfile
from pathlib import Path

from textual import on, work

from flock_es.errors import FlockError

from . import actions, drill
from .detail import Detail
from .screens import ConfirmScreen, DetailScreen, GotoScreen
from .view_navigation import NavigationMixin
from .vlist import VirtualList
from .widgets import ScrubBar

__all__ = ["ActionsMixin"]


class ActionsMixin(NavigationMixin):
    """Time travel, drill-down, runs and CLI actions of ``MonitorApp``."""

    # Following and time travel ----------------------------------------------

    def action_follow(self) -> None:
        """Follow: back to live, newest rows in view, switch to new runs."""
        if self.server is None:
            return
        self.follow = True
        self.command("follow")
        self.refresh_views(full=True)

    def action_pause(self) -> None:
        """Pause: freeze the screen at the current event (new events still get folded)."""
        if self.server is None:
            return
        if self.frame.at is None:
            self._travel_mode = "PAUSED"
            self.follow = False
            self.command("pause")
        else:
            self.command("travel", None)

    def action_step(self, n: int) -> None:
        """Step ``n`` events through the run (time travel)."""
        self._travel("TIME TRAVEL", "step", n)

    def action_seek(self, fraction: float) -> None:
        self._travel("TIME TRAVEL", "seek", fraction)

    def _travel(self, mode: str, name: str, arg: object) -> None:
        if self.server is None:
            return
        self.follow = False
        self._travel_mode = mode
        self.command(name, arg)

    @on(ScrubBar.Scrub)
    def _scrub(self, event: ScrubBar.Scrub) -> None:
        self.action_seek(event.fraction)

    def action_goto(self) -> None:
        """Go to event N: the number the scrub bar shows (``event N/M``), not the seq."""

        def done(n: int | None) -> None:
            if n != GotoScreen.CANCEL:
                self.travel_to_event(n)

        self.push_screen(GotoScreen(), done)

    def travel_to_event(self, n: int | None) -> None:
        """Show the run after its ``n``-th event (None: live)."""
        if n is None:
            self.follow = True
            self.command("travel", None)
        else:
            self._travel("TIME TRAVEL", "seek_ordinal", n)

    def travel_to(self, seq: int | None) -> None:
        """Show the run at ``seq`` (None: live)."""
        self.follow = seq is None
        self._travel_mode = "TIME TRAVEL"
        self.command("travel", seq)

    # Opening things -----------------------------------------------------------

    def action_drill(self) -> None:
        """Open what is selected: a run, an agent, a task, an artifact, an event."""
        view = self.view
        if view == "timeline" or self.server is None:
            return
        if view in ("tasks", "artifacts", "log", "failures"):
            key = self.vlist(view).selected_key
        else:
            key = self.table(view).selected_key
        if key is None:
            return
        if view == "runs":
            self.open_run(key)
            self.action_view("agents")
            return
        self.open_object(drill.KIND_OF_VIEW[view], key)

    def open_object(self, kind: str, key: str) -> None:
        if self.server is None:
            return
        try:
            found = self.server.detail(kind, key)
        except FlockError as exc:
            self.notify(str(exc), severity="error")
            return
        if found is not None:
            self.push_screen(DetailScreen(found))

    @on(DetailScreen.Open)
    def _open_link(self, event: DetailScreen.Open) -> None:
        self.open_object(event.kind, event.key)

    @on(VirtualList.Selected)
    def _list_selected(self, event: VirtualList.Selected) -> None:
        event.stop()  # a list or a table (runs, lanes, batches): open what it selected
        self.action_drill()

    def open_run(self, run_id: str) -> None:
        """Show ``run_id`` and stop following new runs (the header says so; f follows again)."""
        self.follow = False
        self.command("open", run_id)

    # CLI actions ------------------------------------------------------------

    def action_run_action(self, action: str) -> None:
        """Resume, replay, fork (at the event on screen) or export, after a confirm."""
        if self.server is None or self.frame.run_id is None:
            return
        run, at = self.frame.run_id, self.frame.position
        out = Path(tempfile.gettempdir()) / f"{run}.jsonl"
        question = actions.ACTIONS[action].format(run=run, at=at, out=out)
        argv = actions.command(action, self.db, run, at=at, out=out)

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"{action} {run}: started")
                self._run_action(action, argv)

        self.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, group="actions")
    def _run_action(self, action: str, argv: list[str]) -> None:
        result = actions.run(action, argv)
        self.call_from_thread(self._action_done, result)

    def _action_done(self, result: actions.Result) -> None:
        verdict = "ok" if result.ok else f"exit {result.code}"
        title = f"flock-es {result.action}: {verdict} ({result.seconds:.1f}s)"
        from rich.text import Text

        detail = Detail(title, [Text(result.output or "(no output)")], [], {"code": result.code})
        self.push_screen(DetailScreen(detail))
