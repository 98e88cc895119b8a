"""Widgets of the monitor: a table that updates by diff, the timeline, the scrub bar."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.coordinate import Coordinate
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable, Static

from .rows import Row, fmt_seconds
from .sources import Span

T = TypeVar("T")

REBUILD_FACTOR = 400
"""Rebuild instead of removing rows one by one when that would cost more.

``DataTable.remove_row`` is linear in the table size, so removing ``g`` rows of
``n`` costs about ``g * n`` steps, while a rebuild costs one ``add_row`` (a few
hundred steps) per row kept. Dropping 10,000 of 20,000 artifacts after a jump
back in time would take minutes one by one. Events never take this path: each
adds, updates or removes a handful of rows.
"""


@dataclass(slots=True)
class TableStats:
    """Row operations a table performed; the scale test reads these."""

    adds: int = 0
    updates: int = 0
    removes: int = 0
    rebuilds: int = 0


class DiffTable(DataTable[Text]):
    """A DataTable keyed by id that is only ever updated by diff.

    Example::

        table = DiffTable(("agent", "status"))
        table.sync({"editor": ("editor", "running")})   # add_row
        table.sync({"editor": ("editor", "idle")})      # update_cell
    """

    def __init__(
        self,
        columns: Iterable[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.column_names = tuple(columns)
        self.rows_by_key: dict[str, Row] = {}
        self.stats = TableStats()

    def on_mount(self) -> None:
        for name in self.column_names:
            self.add_column(name, key=name)

    @property
    def selected_key(self) -> str | None:
        if not self.rows_by_key or self.cursor_row < 0:
            return None
        try:
            return str(self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value)
        except Exception:  # no row under the cursor (table emptied under it)
            return None

    def add(self, rows: dict[str, Row]) -> None:
        """Append rows whose keys are new (the append-only path of events)."""
        for key, row in rows.items():
            if key in self.rows_by_key:
                self._update(key, row)
                continue
            self.add_row(*map(Text, row), key=key)
            self.rows_by_key[key] = row
            self.stats.adds += 1

    def drop(self, keys: Iterable[str]) -> None:
        for key in keys:
            if self.rows_by_key.pop(key, None) is not None:
                self.remove_row(key)
                self.stats.removes += 1

    def _update(self, key: str, row: Row) -> None:
        old = self.rows_by_key[key]
        if old == row:
            return
        for name, before, after in zip(self.column_names, old, row, strict=True):
            if before != after:
                self.update_cell(key, name, Text(after), update_width=True)
                self.stats.updates += 1
        self.rows_by_key[key] = row

    def sync(self, desired: dict[str, Row]) -> None:
        """Make the table hold exactly ``desired``, touching only what differs."""
        gone = [k for k in self.rows_by_key if k not in desired]
        if len(gone) * len(self.rows_by_key) > REBUILD_FACTOR * max(len(desired), 100):
            self.rebuild(desired)
            return
        self.drop(gone)
        new = {k: v for k, v in desired.items() if k not in self.rows_by_key}
        for key, row in desired.items():
            if key in self.rows_by_key:
                self._update(key, row)
        self.add(new)

    def rebuild(self, desired: dict[str, Row]) -> None:
        """Replace every row at once: for a user action (filter, big jump), never an event."""
        self.clear()
        self.rows_by_key = {}
        self.stats.rebuilds += 1
        for key, row in desired.items():
            self.add_row(*map(Text, row), key=key)
            self.rows_by_key[key] = row


_STATUS_STYLE = {
    "running": Style(color="yellow", bold=True),
    "completed": Style(color="green"),
    "failed": Style(color="red", bold=True),
    "scheduled": Style(color="bright_black"),
}
LABEL = 24
_PLAIN = Style()  # segments need a style: NO_COLOR's monochrome filter reads it


class SpanSource(Protocol):
    """Where the timeline gets its bars (``sources.TimelineSource``)."""

    def count(self) -> int: ...

    def spans(self, start: int, count: int, now: float) -> list[Span]: ...


class Timeline(ScrollView, can_focus=True):
    """One bar per task on a shared time axis, grouped by agent.

    Only the lines on screen are drawn (``render_line`` asks the source for
    that window), so 100,000 tasks scroll as smoothly as nine. Every line
    carries its agent's name, so the labels stay visible while scrolling.
    """

    def __init__(self, source: SpanSource, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.t0 = 0.0
        self.t1 = 1.0
        self._count = 0
        self._cache: dict[int, Span] = {}

    def show(self, t0: float, t1: float) -> None:
        self.t0 = t0
        self.t1 = max(t1, t0 + 1e-6)
        self._count = self.source.count()
        self._cache.clear()
        self.virtual_size = Size(self.size.width, self._count + 1)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, self._count + 1)

    def _span(self, idx: int) -> Span | None:
        if idx not in self._cache:
            height = max(self.size.height, 1)
            start = max(idx - height, 0)  # the screenful around idx, never more
            for k, span in enumerate(self.source.spans(start, 2 * height + 1, self.t1)):
                self._cache[start + k] = span
        return self._cache.get(idx)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        bar_w = max(width - LABEL - 10, 10)
        if y == 0:  # the axis stays on top while the bars scroll under it
            axis = f"{'agent':<{LABEL}}0s{fmt_seconds(self.t1 - self.t0):>{bar_w - 2}}"
            return Strip([Segment(axis[:width], Style(bold=True))]).extend_cell_length(
                width, _PLAIN
            )
        idx = y - 1 + int(self.scroll_offset.y)
        s = self._span(idx) if idx < self._count else None
        if s is None:
            return Strip.blank(width, _PLAIN)
        prev = self._span(idx - 1) if idx > 0 else None
        first = prev is None or prev.agent != s.agent
        label = s.agent.ljust(LABEL)[:LABEL]
        scale = bar_w / (self.t1 - self.t0)
        a = min(max(int((s.start - self.t0) * scale), 0), bar_w - 1)
        b = min(max(int((s.end - self.t0) * scale), a + 1), bar_w)
        style = _STATUS_STYLE.get(s.status, _PLAIN)
        glyph = {"scheduled": "·", "failed": "✗"}.get(s.status, "█")
        segs = [
            Segment(label, Style(bold=first, dim=not first)),
            Segment(" " * a, _PLAIN),
            Segment(glyph * (b - a), style),
            Segment(" " * (bar_w - b), _PLAIN),
            Segment(f" {fmt_seconds(s.end - s.start):>8}", Style(dim=True)),
        ]
        return Strip(segs).crop(0, width).extend_cell_length(width, _PLAIN)


class ScrubBar(Static):
    """Where the screen is in the run: live, paused, or travelling; click to scrub."""

    class Scrub(Message):
        def __init__(self, fraction: float) -> None:
            super().__init__()
            self.fraction = fraction

    PREFIX = 45  # characters before the bar: mode, seq and event counter

    _last: tuple[object, ...] = ()

    def show(self, mode: str, seq: int, index: int, total: int) -> None:
        width = max(self.size.width - self.PREFIX - 2, 10)
        if self._last == (mode, seq, index, total, width):
            return
        # One line whatever the numbers: lay out again only when the width changed.
        layout = not self._last or self._last[-1] != width
        self._last = (mode, seq, index, total, width)
        filled = round(width * index / total) if total else 0
        text = Text()
        style = {"LIVE": "bold green", "PAUSED": "bold yellow"}.get(mode, "bold magenta")
        text.append(f" {mode:<11}", style)
        text.append(f" seq {seq:<7} event {index:>6}/{total:<6} ")
        text.append("━" * filled, "magenta" if mode != "LIVE" else "green")
        text.append("━" * (width - filled), "bright_black")
        self.update(text, layout=layout)

    def on_click(self, event: events.Click) -> None:
        width = max(self.size.width - self.PREFIX - 2, 10)
        x = event.x - self.PREFIX
        if x >= 0:
            self.post_message(self.Scrub(min(x / width, 1.0)))
