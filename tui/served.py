"""The screen's side of the lists: sources that ask the ``ViewServer`` for a window.

A ``ServedList`` is what a ``VirtualList`` draws from: its size comes from the
last ``Frame``, its rows from ``server.rows`` for the window on screen only.
With the fold in a child process that is one short round trip per repaint;
in-process it is a call under the monitor's lock. The same holds for the
timeline's spans.

Example::

    vlist = VirtualList(ServedList(app, "tasks"), id="tasks-list")
"""

from __future__ import annotations

from typing import Protocol

from rich.text import Text

from flock_es.errors import FlockError

from .server import Frame, ViewRequest
from .sources import ArtifactSource, FailureSource, LogSource, Span

__all__ = ["Served", "ServedList", "ServedTimeline"]

Row = tuple[str, tuple[Text, ...]]

_COLUMNS = {
    "artifacts": ArtifactSource.columns,
    "log": LogSource.columns,
    "failures": FailureSource.columns,
}


class _Server(Protocol):
    def rows(self, name: str, req: ViewRequest, start: int, count: int) -> list[Row]: ...

    def spans(self, req: ViewRequest, start: int, count: int, now: float) -> list[Span]: ...


class Served(Protocol):
    """What the sources need of the app: its server, its last frame and its request."""

    @property
    def served_by(self) -> _Server | None: ...

    @property
    def frame(self) -> Frame: ...

    def request(self) -> ViewRequest: ...


class ServedList:
    """List ``name`` (tasks, artifacts, log, failures) of the run on screen."""

    def __init__(self, app: Served, name: str) -> None:
        self.app = app
        self.name = name

    @property
    def columns(self) -> tuple[str, ...]:
        if self.name == "tasks":
            return self.app.frame.task_columns
        return _COLUMNS[self.name]

    def count(self) -> int:
        return self.app.frame.lists.get(self.name, 0)

    def rows(self, start: int, count: int) -> list[Row]:
        server = self.app.served_by
        if server is None or not getattr(server, "ready", True):
            return []
        try:
            return server.rows(self.name, self.app.request(), start, count)
        except FlockError:
            return []  # the status line says why


class ServedTimeline:
    """Every task as a span, grouped by agent, for the rows of the timeline on screen."""

    def __init__(self, app: Served) -> None:
        self.app = app

    def count(self) -> int:
        return self.app.frame.timeline

    def spans(self, start: int, count: int, now: float) -> list[Span]:
        server = self.app.served_by
        if server is None or not getattr(server, "ready", True):
            return []
        try:
            return server.spans(self.app.request(), start, count, now)
        except FlockError:
            return []
