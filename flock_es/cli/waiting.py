"""What an idle run is waiting for, in words: its batch, join and release timers.

A run whose agents are done can still be waiting for a 30 s batch timeout or a
5-minute join window; the progress line says so instead of sitting silent.
"""

from __future__ import annotations

from flock_es.projection.state import RunState

__all__ = ["in_words", "waiting_for"]


def in_words(seconds: float) -> str:
    """``24 s``, ``4 min 50 s``, ``2 h 5 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def waiting_for(state: RunState, now: float, limit: int = 3) -> str:
    """The timers an idle run waits on, soonest first, e.g.
    ``editor batch 7/8, flush in 24 s · matcher join 'k3' 1 waiting, closes in 4 min 50 s``.

    Empty when no timer is armed (a size-only batch that is not full waits for
    ever and is listed by the summary instead).
    """
    items: list[tuple[float, str]] = []
    for b in state.batches.values():
        if b.members and b.deadline is not None:
            size = f"/{b.size}" if b.size else ""
            text = f"{b.agent} batch {len(b.members)}{size}, flush in {in_words(b.deadline - now)}"
            items.append((b.deadline, text))
    for gate, group in state.waiting_gates():
        if group.deadline is not None:
            key = f" {group.key!r}" if group.key else ""
            text = (
                f"{gate.agent} join{key} {len(group.members)} waiting, "
                f"closes in {in_words(group.deadline - now)}"
            )
            items.append((group.deadline, text))
    if state.unreleased:
        due = min(state.unreleased.values())
        n = len(state.unreleased)
        items.append(
            (due, f"{n} embargoed artifact{'s' if n > 1 else ''}, next in {in_words(due - now)}")
        )
    items.sort()
    more = f" · {len(items) - limit} more" if len(items) > limit else ""
    return " · ".join(text for _, text in items[:limit]) + more
