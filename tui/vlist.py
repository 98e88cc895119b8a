"""A virtual list: draws only the rows on screen, whatever the length of the list.

A ``DataTable`` holds one row object per row and re-measures itself on
changes; 100,000 tasks made it the bottleneck. ``VirtualList`` holds nothing
but a cursor, column widths and a cache of the rows it last drew: it asks its
``Source`` for the window on screen (``rows(start, count)``) when it paints.
Elapsed times therefore update only for the rows on screen, and a refresh
costs the same at 10 rows or 1,000,000.

Example::

    vlist = VirtualList(source, id="tasks-list")
    vlist.invalidate()          # the source changed: repaint the window on screen
    vlist.selected_key          # the key of the row under the cursor
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBarRender
from textual.strip import Strip

__all__ = ["BAR", "LineView", "Row", "Source", "VirtualList", "set_virtual_rows"]

Row = tuple[str, tuple[Text, ...]]
"""A row: its key (task id, artifact id, seq) and its cells."""

_HEADER = Style(bold=True, underline=True)
_CURSOR = Style(reverse=True)
_PLAIN = Style()
BAR = 2
"""Columns of a ``LineView``'s scrollbar (Textual's default width)."""


def set_virtual_rows(view: ScrollView, rows: int) -> None:
    """Make ``view`` scroll over ``rows`` lines without laying the screen out again.

    Setting ``virtual_size`` lays out the whole screen and repaints every widget
    on it: for a list whose length changes at every redraw (a run loading or
    live) that was most of the redraw. A ``LineView`` draws its own scrollbar,
    so a new length never changes the layout: the thumb moves with the repaint.
    """
    # No virtual width: lines are cut to the width on screen, never scrolled sideways
    # (a virtual width of the full size put a horizontal scrollbar under every list).
    size = Size(0, rows)
    if size == view.virtual_size:
        return
    view.set_reactive(ScrollView.virtual_size, size)
    if view.scroll_y > view.max_scroll_y:
        view.scroll_to(y=view.max_scroll_y, animate=False, immediate=True)
    view.refresh()


class LineView(ScrollView):
    """A line-drawn ``ScrollView`` whose scrollbar is part of its own lines.

    Textual's scrollbar is a widget of its own: shown again (another view picked),
    it is restyled and repainted once more after the frame that showed the list,
    so a view key reached the screen one frame (20-35 ms) late, and a list that
    grew past the screen's height laid the whole screen out again. Drawn here,
    in the last ``BAR`` columns of each line, showing a list is one layout and
    one frame. Subclasses draw ``content_width`` columns and pass each line
    through ``with_bar``.
    """

    DEFAULT_CSS = """
    LineView {
        overflow-x: hidden;
        overflow-y: hidden;
    }
    """

    _bar_key: tuple[object, ...] = ()
    _bar: list[Segment] = []  # noqa: RUF012 (replaced, never mutated)

    @property
    def allow_vertical_scroll(self) -> bool:
        """The mouse wheel scrolls, although Textual's scrollbar is hidden."""
        return self.max_scroll_y > 0

    @property
    def has_bar(self) -> bool:
        return self.virtual_size.height > self.size.height > 0

    @property
    def content_width(self) -> int:
        """The columns left of the scrollbar."""
        return max(self.size.width - (BAR if self.has_bar else 0), 0)

    def with_bar(self, strip: Strip, y: int) -> Strip:
        """Line ``y`` with its cells of the scrollbar (drawn as Textual draws its own)."""
        if not self.has_bar:
            return strip
        height = self.size.height
        key = (height, self.virtual_size.height, self.scroll_y, self.styles.scrollbar_color)
        if key != self._bar_key:
            self._bar_key, self._bar = key, self._render_bar(height)
        return Strip([*strip, self._bar[y]]) if y < len(self._bar) else strip

    def _render_bar(self, height: int) -> list[Segment]:
        styles = self.styles
        background = styles.scrollbar_background
        if background.a < 1:
            background = self.background_colors[0] + background
        color = background + styles.scrollbar_color
        bar = ScrollBarRender.render_bar(
            size=height,
            virtual_size=self.virtual_size.height,
            window_size=height,
            position=int(self.scroll_y * 8) / 8,
            thickness=BAR,
            vertical=True,
            back_color=background.rich_color,
            bar_color=color.rich_color,
        )
        # The mouse meta names actions of Textual's scrollbar widget; a click is ours.
        return [
            Segment(s.text, s.style.clear_meta_and_links() if s.style else None)
            for s in bar.segments
        ]

    def bar_click(self, x: int, y: int) -> bool:
        """A click on the scrollbar scrolls there; True if it was on it."""
        if not self.has_bar or x < self.content_width:
            return False
        height = max(self.size.height - 1, 1)
        self.scroll_to(y=self.max_scroll_y * min(y / height, 1.0), animate=False)
        return True


class Source(Protocol):
    """Where a ``VirtualList`` gets its rows; ``count`` and ``rows`` must be cheap."""

    @property
    def columns(self) -> tuple[str, ...]: ...

    def count(self) -> int: ...

    def rows(self, start: int, count: int) -> list[Row]: ...


class _RowMessage(Message):
    """A message about one row of a ``VirtualList`` (``control`` is the list)."""

    def __init__(self, vlist: VirtualList, key: str | None) -> None:
        super().__init__()
        self.vlist = vlist
        self.key = key

    @property
    def control(self) -> VirtualList:
        return self.vlist


class VirtualList(LineView, can_focus=True):
    """Rows ``0 .. source.count()`` with a header, a cursor and keyboard paging."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    class Selected(_RowMessage):
        """Enter (or a click) on a row."""

        key: str

    class Highlighted(_RowMessage):
        """The cursor moved to another row (``key`` None: no row)."""

    def __init__(self, source: Source, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.cursor = 0
        self.stick_to_end = False  # follow mode: the cursor stays on the newest row
        self.widths = [len(c) for c in source.columns]
        self._cache: dict[int, Row] = {}
        self._count = 0

    # Data -------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return self.source.count()

    def set_source(self, source: Source) -> None:
        self.source = source
        self.widths = [len(c) for c in source.columns]
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self.invalidate()

    def invalidate(self) -> None:
        """The source changed: forget the drawn rows, resize, repaint what is on screen."""
        self._cache.clear()
        columns = self.source.columns
        if len(self.widths) < len(columns):  # a column appeared (the tasks' worker)
            self.widths += [len(c) for c in columns[len(self.widths) :]]
        count = self.source.count()
        grew = count != self._count
        self._count = count
        set_virtual_rows(self, count + 1)
        if self.stick_to_end and count:
            self.cursor = count - 1
            self._show_cursor()
        elif self.cursor >= count:
            self.cursor = max(count - 1, 0)
        if grew or self.stick_to_end:
            self.post_message(self.Highlighted(self, self.selected_key))
        self.refresh()

    def repaint_rows(self, indices: list[int]) -> None:
        """Rows ``indices`` changed in place: repaint their lines only (all if a column widened)."""
        widths = list(self.widths)
        for i in indices:
            self._cache.pop(i, None)
        top, height = int(self.scroll_offset.y), max(self.size.height - 1, 0)
        shown = [i for i in indices if top <= i < top + height]
        for i in shown:
            self.row(i)  # fetched now: a wider value widens its column
        if self.widths != widths:
            self._cache.clear()
            self.refresh()
            return
        for i in shown:
            self.refresh(Region(0, i - top + 1, self.size.width, 1))

    def keys(self) -> list[str]:
        """Every key, in order (for tests and small lists)."""
        return [key for key, _ in self.source.rows(0, self.source.count())]

    def row(self, i: int) -> Row | None:
        if i not in self._cache:
            self._fetch(i)
        return self._cache.get(i)

    def prefetch(self) -> None:
        """Fetch the window on screen before the frame that shows the list: its widest
        cells set the column widths first, so that frame is not followed by a repaint."""
        if self._count:
            self.row(int(self.scroll_offset.y))

    def _fetch(self, i: int) -> None:
        """Ask the source for the screenful around row ``i`` (never more)."""
        # Never shown yet, the list has no height: the screen's is an upper bound.
        height = max(self.size.height or self.app.size.height, 1)
        start = max(i - height, 0)
        widths = list(self.widths)
        for n, row in enumerate(self.source.rows(start, 2 * height + 1)):
            self._cache[start + n] = row
            for c, cell in enumerate(row[1][: len(self.widths)]):
                if cell.cell_len > self.widths[c]:
                    self.widths[c] = min(cell.cell_len, 48)
        if self.widths != widths:  # a column widened: lines drawn before must follow
            self.refresh()

    @property
    def selected_key(self) -> str | None:
        if not self.source.count():
            return None
        row = self.row(self.cursor)
        return row[0] if row is not None else None

    # Drawing ------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        return self.with_bar(self._line(y, self.content_width), y)

    def _line(self, y: int, width: int) -> Strip:
        if y == 0:
            cells = tuple(Text(c) for c in self.source.columns)
            return self._strip(cells, width, _HEADER)
        i = int(self.scroll_offset.y) + y - 1
        if i >= self._count:
            return Strip.blank(width, _PLAIN)
        row = self.row(i)
        if row is None:
            return Strip.blank(width, _PLAIN)
        style = _CURSOR if i == self.cursor and self.has_focus else _PLAIN
        return self._strip(row[1], width, style)

    def _strip(self, cells: tuple[Text, ...], width: int, style: Style) -> Strip:
        line = Text(no_wrap=True, overflow="ellipsis")
        last = len(cells) - 1
        for n, cell in enumerate(cells):
            text = cell.copy()
            if n < last:
                w = self.widths[n] if n < len(self.widths) else 10
                text.truncate(w, overflow="ellipsis", pad=True)
                text.append(" ")
            line.append_text(text)
        line.truncate(width, overflow="ellipsis")
        segments = [
            Segment(s.text, style + s.style if s.style else style)
            for s in line.render(self.app.console)
        ]
        return Strip(segments).crop(0, width).extend_cell_length(width, style)

    # Moving -------------------------------------------------------------------

    def _show_cursor(self) -> None:
        top = int(self.scroll_offset.y)
        rows = max(self.size.height - 1, 1)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, immediate=True)

    def move_to(self, i: int) -> None:
        count = self.source.count()
        self.cursor = min(max(i, 0), max(count - 1, 0))
        self.stick_to_end = False
        self._show_cursor()
        self.refresh()
        self.post_message(self.Highlighted(self, self.selected_key))

    def action_move(self, n: int) -> None:
        self.move_to(self.cursor + n)

    def action_page(self, n: int) -> None:
        self.move_to(self.cursor + n * max(self.size.height - 2, 1))

    def action_jump(self, i: int) -> None:
        self.move_to(i if i >= 0 else self.source.count() - 1)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        # The layout that resized this list has placed its scrollbars already: the
        # width is recorded without laying the screen out a second time (shown again
        # after another view, every list is resized).
        self.set_reactive(ScrollView.virtual_size, Size(0, self._count + 1))

    def on_click(self, event: events.Click) -> None:
        if self.bar_click(event.x, event.y):
            return
        if event.y >= 1:
            i = int(self.scroll_offset.y) + event.y - 1
            if i < self._count:
                self.move_to(i)
                if event.chain >= 2:
                    self._select()

    def action_select(self) -> None:
        self._select()

    def _select(self) -> None:
        key = self.selected_key
        if key is not None:
            self.post_message(self.Selected(self, key))
