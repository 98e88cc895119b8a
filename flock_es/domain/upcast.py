"""The upcast path: old event bodies brought up to the current schema when read.

Every stored event carries the schema version it was written with (``v``).
When a body's definition changes, bump ``SCHEMA_VERSION`` and register one
upcaster for the kinds that changed: a pure function that lifts a body from
version ``n`` to ``n + 1``. Reading applies the chain from the stored version
to the current one; a kind with no upcaster for a step did not change in it.
Events are never rewritten in the log: upcasting happens on every read, so a
v1 log stays a v1 log and every reader of it sees current bodies.

Example (a v2 that renamed ``task.failed``'s ``error`` to ``message``)::

    upcasters = Upcasters(current=2)

    @upcasters.register(EventKind.TASK_FAILED, 1)
    def _message(body: dict[str, Any]) -> dict[str, Any]:
        out = dict(body)
        out["message"] = out.pop("error")
        return out

    body, v = upcasters.upcast(EventKind.TASK_FAILED, 1, {"error": "boom"})
    assert body == {"message": "boom"} and v == 2
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flock_es.domain.events import SCHEMA_VERSION, EventKind

__all__ = ["UPCASTERS", "Upcaster", "Upcasters", "upcast"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Lifts one body from version n to n + 1; pure, and never mutates its argument."""


class Upcasters:
    """A registry of upcasters per (kind, version they lift from)."""

    def __init__(self, current: int = SCHEMA_VERSION) -> None:
        self.current = current
        self._steps: dict[tuple[EventKind, int], Upcaster] = {}

    def register(self, kind: EventKind, version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: ``fn`` lifts a ``kind`` body from ``version`` to ``version + 1``."""
        if not 1 <= version < self.current:
            raise ValueError(f"an upcaster lifts a version in 1..{self.current - 1}, not {version}")

        def add(fn: Upcaster) -> Upcaster:
            if (kind, version) in self._steps:
                raise ValueError(f"{kind.value} v{version} already has an upcaster")
            self._steps[(kind, version)] = fn
            return fn

        return add

    def upcast(self, kind: EventKind, v: int, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """``body`` (stored at version ``v``) as the current version defines it, and that version.

        A body newer than this code knows is returned as it is (the readers stay
        total; an import refuses it before it gets here).
        """
        if v >= self.current:  # the common case: one comparison per event read
            return body, v
        for step in range(v, self.current):
            fn = self._steps.get((kind, step))
            if fn is not None:
                body = fn(body)
        return body, self.current


UPCASTERS = Upcasters()
"""The registry the readers use. Version 1 is the first: nothing to upcast yet."""


def upcast(kind: EventKind, v: int, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``UPCASTERS.upcast``: the body of a stored event, brought up to the current schema."""
    return UPCASTERS.upcast(kind, v, body)
