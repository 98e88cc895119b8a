"""Payloads cut to what a screen can show.

An artifact may hold a whole document (a scraped page, a PDF's text: megabytes),
and a model call's prompt holds its inputs again. Rendered whole, one 2 MB
payload held the TUI for seven seconds on each selection, key and resize (the
side pane and the detail lay out every wrapped line, visible or not). So the
TUI renders a copy whose long strings and long lists are cut, each cut saying
in place how much it left out, and says where the whole text is:
``flock-es show RUN --payloads --json`` prints every payload, ``flock-es export
RUN`` every event (prompts and answers too), as the log holds them.

Example::

    value, cut = bounded({"text": "x" * 50_000}, DETAIL)
    value["text"][-22:]   # '… [+30,000 characters]' (after 20,000 x)
    cut                   # 30000
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flock_es.domain.printable import printable

__all__ = ["DETAIL", "PANE", "Bounds", "bounded", "bounded_text", "cut_note"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """At most ``chars`` characters of one string and ``items`` entries of one list or
    object, ``total`` characters and entries in all (lists nested in lists multiply
    the others); ``depth`` levels of nesting."""

    chars: int
    items: int
    total: int = 1_000_000
    depth: int = 32


# The side pane shows a screenful; a detail screen is scrolled, so it shows more.
PANE = Bounds(chars=2_000, items=100, total=20_000)
DETAIL = Bounds(chars=20_000, items=1_000, total=100_000)


def bounded(value: Any, bounds: Bounds) -> tuple[Any, int]:
    """A copy of ``value`` with its long strings and lists cut (``bounds``), and how
    many characters and entries were cut in all (0: the copy is ``value`` itself).

    Containers are copied only where something in them was cut."""
    walk = _Walk(bounds)
    return walk.value(value, bounds.depth), walk.cut


class _Walk:
    """One pass over a value: what it may still show (``left``) and what it cut."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.left = bounds.total
        self.cut = 0

    def value(self, v: Any, depth: int) -> Any:
        if isinstance(v, str):
            return self.string(v)
        if isinstance(v, dict | list | tuple):
            if depth <= 0:
                self.cut += len(v)
                return f"… [{len(v):,} entries nested too deep]"
            return self.dict(v, depth) if isinstance(v, dict) else self.list(v, depth)
        self.left -= 1
        return v

    def string(self, s: str) -> str:
        limit = max(min(self.bounds.chars, self.left), 0)
        self.left -= min(len(s), limit)
        rest = len(s) - limit
        if rest <= 0:
            return s
        self.cut += rest
        return f"{s[:limit]}… [+{rest:,} characters]"

    def _full(self, i: int) -> bool:
        """Whether a container's entry ``i`` is past what may be shown."""
        return i >= self.bounds.items or self.left <= 0

    def dict(self, d: dict[Any, Any], depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        changed = False
        for i, (k, v) in enumerate(d.items()):
            if self._full(i):
                rest = len(d) - i
                out["…"] = f"[+{rest:,} more entries]"
                self.cut += rest
                return out
            self.left -= 1
            out[k] = shown = self.value(v, depth - 1)
            changed = changed or shown is not v
        return out if changed else d

    def list(self, items: list[Any] | tuple[Any, ...], depth: int) -> list[Any] | tuple[Any, ...]:
        out: list[Any] = []
        changed = False
        for i, v in enumerate(items):
            if self._full(i):
                rest = len(items) - i
                out.append(f"… [+{rest:,} more items]")
                self.cut += rest
                return out
            self.left -= 1
            out.append(shown := self.value(v, depth - 1))
            changed = changed or shown is not v
        return out if changed else items


def bounded_text(text: str, bounds: Bounds) -> tuple[str, int]:
    """``text`` cut to ``bounds.chars`` characters (saying how many it left out), its
    control characters escaped (``printable``: the terminal must not act on them)."""
    walk = _Walk(bounds)
    return printable(walk.string(text)), walk.cut


def cut_note(run: str = "RUN", events: bool = False) -> str:
    """The line a cut screen shows: where the whole text is (``events``: a model
    call's or a tool's, which only the run's events hold)."""
    whole = f"flock-es export {run}" if events else f"flock-es show {run} --payloads --json"
    return f"Long text and lists are cut here (each cut says [+N ...]); {whole} has them whole."
