"""One event-log row per event, worded by the shared ``flock_es.domain.describe``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flock_es.domain.describe import actor, describe
from flock_es.domain.events import Event
from flock_es.domain.printable import printable

if TYPE_CHECKING:
    from .monitor import LogLine

__all__ = ["WIDEST", "summarise"]

WIDEST = 4_000  # characters: wider than any terminal


def summarise(e: Event) -> LogLine:
    """A one-line description of an event for the event log (the screen truncates it
    to its width; only its first ``WIDEST`` characters are read: a failure's
    message can hold a whole document)."""
    from .monitor import LogLine

    text = printable(" ".join(describe(e)[:WIDEST].split()))  # it may quote an error
    return LogLine(seq=e.seq or 0, ts=e.ts, kind=str(e.kind), agent=actor(e), summary=text)
