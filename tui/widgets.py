"""Widgets of the monitor: a table that updates by diff, the timeline, the scrub bar."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from .rows import Row, fmt_seconds
from .sources import Span
from .vlist import LineView, VirtualList, set_virtual_rows

T = TypeVar("T")


@dataclass(slots=True)
class TableStats:
    """Row operations a table performed; the scale test reads these."""

    adds: int = 0
    updates: int = 0
    removes: int = 0
    rebuilds: int = 0


class _Rows:
    """The rows of a ``DiffTable`` as a ``VirtualList`` source (a dict, in order)."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.by_key: dict[str, Row] = {}
        self.keys: list[str] = []

    def count(self) -> int:
        return len(self.keys)

    def rows(self, start: int, count: int) -> list[tuple[str, tuple[Text, ...]]]:
        return [(k, tuple(map(_cell, self.by_key[k]))) for k in self.keys[start : start + count]]


def _cell(value: str) -> Text:
    # A failure is red as well as marked (the marker is what NO_COLOR shows).
    return Text(value, "bold red") if value.startswith("✗") else Text(value)


class DiffTable(VirtualList):
    """A small keyed table (runs, agent lanes, batches), drawn line by line.

    A ``DataTable`` re-measured and re-rendered every cell when one changed and
    whenever focus moved: the lanes of a big run cost more to draw than the
    rest of the screen. This table is a ``VirtualList`` over a dict of rows: a
    changed row repaints its own line, and nothing is re-measured.

    Example::

        table = DiffTable(("agent", "status"))
        table.sync({"editor": ("editor", "running")})   # a new row
        table.sync({"editor": ("editor", "idle")})      # its line is repainted
    """

    def __init__(self, columns: Iterable[str], **kwargs: Any) -> None:
        self.table = _Rows(tuple(columns))
        super().__init__(self.table, **kwargs)
        self.column_names = self.table.columns
        self.stats = TableStats()

    @property
    def rows_by_key(self) -> dict[str, Row]:
        return self.table.by_key

    @property
    def cursor_row(self) -> int:
        return self.cursor if self.table.keys else -1

    def move_cursor(self, *, row: int) -> None:
        """Put the cursor on row ``row`` (``DataTable``'s name for it)."""
        self.move_to(row)

    def add(self, rows: dict[str, Row]) -> None:
        """Append rows whose keys are new (or update those that are not)."""
        self.sync({**self.table.by_key, **rows})

    def drop(self, keys: Iterable[str]) -> None:
        gone = set(keys)
        self.sync({k: v for k, v in self.table.by_key.items() if k not in gone})

    def sync(self, desired: dict[str, Row]) -> None:
        """Make the table hold exactly ``desired``, repainting only the lines that differ."""
        old, keys = self.table.by_key, list(desired)
        changed = [i for i, k in enumerate(keys) if old.get(k) != desired[k]]
        if keys == self.table.keys and not changed:
            return
        st = self.stats
        st.adds += sum(1 for k in keys if k not in old)
        st.removes += sum(1 for k in old if k not in desired)
        st.updates += sum(1 for i in changed if keys[i] in old)
        same_order = keys == self.table.keys
        self.table.by_key, self.table.keys = dict(desired), keys
        if same_order and not self._measure():
            self.repaint_rows(changed)
        else:
            self.invalidate()

    def rebuild(self, desired: dict[str, Row]) -> None:
        """Replace every row at once (a user action: filter, another run)."""
        self.stats.rebuilds += 1
        self.table.by_key, self.table.keys = dict(desired), list(desired)
        self._measure()
        self.invalidate()

    def _measure(self) -> bool:
        """Size the columns to every row (a few dozen), so all lines line up; True if changed."""
        widths = [len(c) for c in self.column_names]
        for row in self.table.by_key.values():
            for c, value in enumerate(row[: len(widths)]):
                widths[c] = max(widths[c], min(len(value), 48))
        changed, self.widths = widths != self.widths, widths
        return changed


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


class Timeline(LineView, can_focus=True):
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
        set_virtual_rows(self, self._count + 1)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.set_reactive(ScrollView.virtual_size, Size(0, self._count + 1))

    def _span(self, idx: int) -> Span | None:
        if idx not in self._cache:
            height = max(self.size.height, 1)
            start = max(idx - height, 0)  # the screenful around idx, never more
            for k, span in enumerate(self.source.spans(start, 2 * height + 1, self.t1)):
                self._cache[start + k] = span
        return self._cache.get(idx)

    def render_line(self, y: int) -> Strip:
        return self.with_bar(self._line(y, self.content_width), y)

    def on_click(self, event: events.Click) -> None:
        self.bar_click(event.x, event.y)

    def _line(self, y: int, width: int) -> Strip:
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


class ViewTabs(Static):
    """The views' names on one line, the one on screen highlighted; click one to show it.

    Textual's ``TabbedContent`` redrew its tabs, their underline and three
    nested containers, and restyled every tab, on each switch: a third of what
    a view key cost. This is one line of text.
    """

    class Picked(Message):
        def __init__(self, view: str) -> None:
            super().__init__()
            self.view = view

    def __init__(self, titles: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.titles = titles
        self.active = ""
        self._spans: list[tuple[int, int, str]] = []

    def show(self, active: str) -> None:
        if active == self.active:
            return
        self.active = active
        text, self._spans = Text(" "), []
        for i, (view, title) in enumerate(self.titles.items(), 1):
            start = text.cell_len
            text.append(f" {i} {title} ", "bold reverse" if view == active else "")
            self._spans.append((start, text.cell_len, view))
            text.append(" ")
        self.update(text, layout=False)

    def on_click(self, event: events.Click) -> None:
        for start, end, view in self._spans:
            if start <= event.x < end:
                self.post_message(self.Picked(view))
