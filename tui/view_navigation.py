"""Keys that switch views, filter them and sort the runs (``MonitorApp``'s navigation).

The views, the filter box, the tasks' mode and the runs' sort order change what
the screen asks of the ``ViewServer``; the drawing itself is ``ViewMixin``'s
(``tui/view.py``). The Runs view's per-run counters are loaded off the UI thread.

Example::

    app.action_view("tasks")            # 3: the Tasks view, focused
    app.set_filter("agent:editor")      # /: every view filtered
"""

from __future__ import annotations

import contextlib
from typing import Any

from textual import on, work
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input

from flock_es.domain.events import RunStatus
from flock_es.log.liveness import live_status
from flock_es.log.ports import open_store

from . import rows
from .screens import HelpScreen
from .sources import TaskSource
from .view import LISTS, ViewMixin
from .vlist import VirtualList
from .widgets import ViewTabs

__all__ = ["NavigationMixin"]


class NavigationMixin(ViewMixin):
    """Views, filter, tasks' mode and runs' sort of ``MonitorApp`` (see the module)."""

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
        """Filter every view (``agent:NAME``, ``type:TYPE``, ``kind:KIND``, ``status:S``, words)."""
        self._filter_text = text.strip()
        self.filter = rows.Filter.parse(text)
        self._rebuild_sources()

    def _rebuild_sources(self) -> None:
        """The filter or the tasks' mode changed: every list starts again at its top."""
        for vl in self.query(VirtualList).results():
            vl.set_source(vl.source)
        self.refresh_views(full=True)

    def action_task_mode(self) -> None:
        modes = TaskSource.MODES
        self.task_mode = modes[(modes.index(self.task_mode) + 1) % len(modes)]
        self._rebuild_sources()

    def action_sort_runs(self) -> None:
        sorts = rows.RUN_SORTS
        self.run_sort = sorts[(sorts.index(self.run_sort) + 1) % len(sorts)]
        self.notify(f"runs sorted by {self.run_sort}, descending")
        self.refresh_views(full=True)

    def action_next_view(self) -> None:
        self._cycle(1)

    def action_prev_view(self) -> None:
        self._cycle(-1)

    def _cycle(self, d: int) -> None:
        if len(self.screen_stack) > 1:
            return
        from .app import VIEWS

        i = VIEWS.index(self.view)
        self.action_view(VIEWS[(i + d) % len(VIEWS)])

    def action_view(self, view: str) -> None:
        views = self._q("#views", ContentSwitcher)
        if views.current != view:
            views.current = view
            self._q("#tabs", ViewTabs).show(view)
            if view == "runs":
                self._load_run_stats()
            self._show_view(view)
        self._focus_view()

    @on(ViewTabs.Picked)
    def _tab_picked(self, event: ViewTabs.Picked) -> None:
        self.action_view(event.view)

    def _focus_view(self) -> None:
        view = self.view
        if view in LISTS:
            self.vlist(view).focus()
        elif view == "timeline":
            self._q("#timeline-view", Widget).focus()
        else:
            self.table(view).focus()

    def action_go_back(self) -> None:
        box = self._q("#filter", Input)
        if box.display:
            box.display = False
            self._focus_view()
        elif self.filter:
            self.set_filter("")
        elif self.view != "agents":
            self.action_view("agents")

    @work(thread=True, exclusive=True, group="stats")
    def _load_run_stats(self) -> None:
        """Per-run counters (one aggregate query) for the Runs view, off the UI thread."""
        if self.server is None:
            return
        with open_store(self.db, readonly=True).reader() as reader:
            stats = reader.run_stats()
            for r in reader.runs():
                st = stats.get(r.run_id)
                if st is None or (r.status and r.status != RunStatus.RUNNING.value):
                    continue
                done = _count(st["done"]) + _count(st["failed"])
                pending = _count(st["scheduled"]) > done
                pid, host = st.get("pid"), st.get("host")
                st["status"] = live_status(
                    r.status,
                    pid if isinstance(pid, int) else None,
                    host if isinstance(host, str) else None,
                    pending,
                    bool(st["failed"]),
                )
        self.call_from_thread(self._stats_loaded, stats)

    def _stats_loaded(self, stats: dict[str, dict[str, Any]]) -> None:
        self.run_stats = stats
        if self.server is not None:
            with contextlib.suppress(NoMatches):  # the app closed while they loaded
                self._runs(True)


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0
