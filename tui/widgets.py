"""Widgets of the monitor: a table that updates by diff, the timeline, the scrub bar."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

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

from .rows import Row, Span, fmt_seconds

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
                self.update_cell(key, name, Text(after))
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


class LogTable(DiffTable):
    """The event-log tail: a ring of row slots, so the oldest line's row is reused.

    Removing the oldest of 500 rows costs ``DataTable.remove_row`` a pass over
    every row; a busy run would pay that per event. Here a new line overwrites
    the cells of the slot that showed the oldest line (``update_cell``) and one
    sort per refresh puts the slots back in seq order.
    """

    def __init__(self, columns: Iterable[str], *, cap: int, **kwargs: Any) -> None:
        super().__init__(columns, **kwargs)
        self.cap = cap
        self.slot_seq: dict[str, int] = {}
        self._next_slot = 0

    def seq_at_cursor(self) -> int | None:
        key = self.selected_key
        return self.slot_seq.get(key) if key is not None else None

    def show(self, lines: dict[int, T], render: Callable[[T], Row]) -> None:
        """Show exactly ``lines`` (seq -> line, at most ``cap``), reusing slots.

        ``render`` makes the row of a line; it runs only for lines not yet shown.
        """
        shown = set(self.slot_seq.values())
        free = [slot for slot, seq in self.slot_seq.items() if seq not in lines]
        extra = len(free) - sum(1 for seq in lines if seq not in shown)
        if extra * len(self.slot_seq) > REBUILD_FACTOR * max(len(lines), 100):
            self.slot_seq = {}
            slots = {}
            for seq, line in lines.items():
                slot = self._slot()
                self.slot_seq[slot] = seq
                slots[slot] = render(line)
            self.rebuild(slots)
            return
        free.sort(key=self.slot_seq.__getitem__)
        for seq, line in lines.items():
            if seq in shown:
                continue
            row = render(line)
            if free:
                slot = free.pop(0)
                self._update(slot, row)
            else:
                slot = self._slot()
                self.add({slot: row})
            self.slot_seq[slot] = seq
        if free:
            self.drop(free)
            for slot in free:
                del self.slot_seq[slot]
        order = sorted(self.slot_seq, key=self.slot_seq.__getitem__)
        if order != list(self.rows_by_key):
            self.sort(self.column_names[0], key=lambda cell: int(cell.plain))
            self.rows_by_key = {slot: self.rows_by_key[slot] for slot in order}

    def _slot(self) -> str:
        self._next_slot += 1
        return f"s{self._next_slot}"


_STATUS_STYLE = {
    "running": Style(color="yellow", bold=True),
    "completed": Style(color="green"),
    "failed": Style(color="red", bold=True),
    "scheduled": Style(color="bright_black"),
}
LABEL = 24
_PLAIN = Style()  # segments need a style: NO_COLOR's monochrome filter reads it


class Timeline(ScrollView, can_focus=True):
    """One bar per task, grouped by agent, on a shared time axis.

    Only the lines on screen are drawn (``render_line``), so a run of 20,000
    tasks scrolls as smoothly as one of nine.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spans: list[Span] = []
        self.t0 = 0.0
        self.t1 = 1.0

    def show(self, spans: list[Span], t0: float, t1: float) -> None:
        self.spans = spans
        self.t0 = t0
        self.t1 = max(t1, t0 + 1e-6)
        self.virtual_size = Size(self.size.width, len(spans) + 1)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.spans) + 1)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        idx = y + int(self.scroll_offset.y)
        bar_w = max(width - LABEL - 10, 10)
        if idx == 0:
            axis = f"{'agent':<{LABEL}}0s{fmt_seconds(self.t1 - self.t0):>{bar_w - 2}}"
            return Strip([Segment(axis[:width], Style(bold=True))]).extend_cell_length(
                width, _PLAIN
            )
        idx -= 1
        if idx >= len(self.spans):
            return Strip.blank(width, _PLAIN)
        s = self.spans[idx]
        first = idx == 0 or self.spans[idx - 1].agent != s.agent
        label = (s.agent if first else "").ljust(LABEL)[:LABEL]
        scale = bar_w / (self.t1 - self.t0)
        a = min(int((s.start - self.t0) * scale), bar_w - 1)
        b = min(max(int((s.end - self.t0) * scale), a + 1), bar_w)
        style = _STATUS_STYLE.get(s.status, _PLAIN)
        glyph = "·" if s.status == "scheduled" else "█"
        segs = [
            Segment(label, Style(bold=first)),
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
        self._last = (mode, seq, index, total, width)
        filled = round(width * index / total) if total else 0
        text = Text()
        style = {"LIVE": "bold green", "PAUSED": "bold yellow"}.get(mode, "bold magenta")
        text.append(f" {mode:<11}", style)
        text.append(f" seq {seq:<7} event {index:>6}/{total:<6} ")
        text.append("━" * filled, "magenta" if mode != "LIVE" else "green")
        text.append("━" * (width - filled), "bright_black")
        self.update(text)

    def on_click(self, event: events.Click) -> None:
        width = max(self.size.width - self.PREFIX - 2, 10)
        x = event.x - self.PREFIX
        if x >= 0:
            self.post_message(self.Scrub(min(x / width, 1.0)))
