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
    value["text"][-30:]   # '… [+30,000 characters]'
    cut                   # 30000
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DETAIL", "PANE", "Bounds", "bounded", "bounded_text", "cut_note"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """At most ``chars`` characters of one string and ``items`` entries of one list or
    object; ``depth`` levels of nesting."""

    chars: int
    items: int
    depth: int = 32


# The side pane shows a screenful; a detail screen is scrolled, so it shows more.
PANE = Bounds(chars=2_000, items=100)
DETAIL = Bounds(chars=20_000, items=1_000)


def _cut_string(s: str, limit: int) -> tuple[str, int]:
    left = len(s) - limit
    if left <= 0:
        return s, 0
    return f"{s[:limit]}… [+{left:,} characters]", left


def bounded(value: Any, bounds: Bounds) -> tuple[Any, int]:
    """A copy of ``value`` with its long strings and lists cut (``bounds``), and how
    many characters and entries were cut in all (0: the copy is ``value`` itself).

    Containers are copied only where something in them was cut."""
    return _bounded(value, bounds, bounds.depth)


def _bounded(value: Any, bounds: Bounds, depth: int) -> tuple[Any, int]:
    if isinstance(value, str):
        return _cut_string(value, bounds.chars)
    if depth <= 0 and isinstance(value, dict | list | tuple):
        return f"… [{len(value):,} entries nested too deep]", len(value)
    if isinstance(value, dict):
        return _bounded_dict(value, bounds, depth)
    if isinstance(value, list | tuple):
        return _bounded_list(value, bounds, depth)
    return value, 0


def _bounded_dict(value: dict[Any, Any], bounds: Bounds, depth: int) -> tuple[Any, int]:
    out: dict[Any, Any] = {}
    cut = 0
    for i, (k, v) in enumerate(value.items()):
        if i == bounds.items:
            rest = len(value) - i
            out["…"] = f"[+{rest:,} more entries]"
            cut += rest
            break
        out[k], n = _bounded(v, bounds, depth - 1)
        cut += n
    return (out, cut) if cut else (value, 0)


def _bounded_list(
    value: list[Any] | tuple[Any, ...], bounds: Bounds, depth: int
) -> tuple[Any, int]:
    out: list[Any] = []
    cut = 0
    for v in value[: bounds.items]:
        item, n = _bounded(v, bounds, depth - 1)
        out.append(item)
        cut += n
    rest = len(value) - bounds.items
    if rest > 0:
        out.append(f"… [+{rest:,} more items]")
        cut += rest
    return (out, cut) if cut else (value, 0)


def bounded_text(text: str, bounds: Bounds) -> tuple[str, int]:
    """``text`` cut to ``bounds.chars`` characters (saying how many it left out)."""
    return _cut_string(text, bounds.chars)


def cut_note(run: str = "RUN", events: bool = False) -> str:
    """The line a cut screen shows: where the whole text is (``events``: a model
    call's or a tool's, which only the run's events hold)."""
    whole = f"flock-es export {run}" if events else f"flock-es show {run} --payloads --json"
    return f"Long text and lists are cut here (each cut says [+N ...]); {whole} has them whole."
