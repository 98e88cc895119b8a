"""The kernel's ports: where its committed events go (``Sink``), who acts on them
(``Actor``), who hears about them (``Listener``), and what model and tool calls
record through (``Recorder``), with the null sink and recorder of a replay or a
resume's pre-flight check, which record nothing.

Apart from the kernel (``runtime/kernel.py``) because these are the contracts
the log's writers, the engine, the shared-log link and the model calls meet it
at; a module that only records or only plugs a sink in needs no ``Kernel``.
Example::

    kernel = Kernel(run_id, NullSink(), index)    # a replay: nothing is written
    calls = ModelCalls(state, NullRecorder(), client_for, model)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from flock_es.domain.events import Event

__all__ = ["Actor", "Listener", "NullRecorder", "NullSink", "Recorder", "Sink"]

Listener = Callable[[list[Event]], None]


class Sink(Protocol):
    """Where committed events go: the log's group-commit writer."""

    def submit(self, events: list[Event]) -> Awaitable[None]:
        """Queue one atomic unit; the awaitable resolves after its commit."""

    def enqueue(self, events: list[Event]) -> None:
        """Queue one unit nothing waits on; order with later units is kept."""


class Actor(Protocol):
    """What the kernel tells about every committed unit (runs tasks, arms timers)."""

    def act(self, events: list[Event]) -> None: ...


class Recorder(Protocol):
    """The recording half of the kernel, as model and tool calls use it: ``record``
    (apply and queue), ``apply`` now and ``queue`` later, or ``emit`` (and wait)."""

    def record(self, events: list[Event]) -> None: ...

    def apply(self, events: list[Event]) -> None: ...

    def queue(self, events: list[Event]) -> None: ...

    async def emit(self, events: list[Event]) -> None: ...


class NullSink:
    """A sink that records nothing (replay, and the resume pre-flight check)."""

    async def _done(self) -> None:
        return None

    def submit(self, events: list[Event]) -> Awaitable[None]:
        return self._done()

    def enqueue(self, events: list[Event]) -> None:
        return None


class NullRecorder:
    """Records nothing: model calls of a replay or a pre-flight check go nowhere."""

    def record(self, events: list[Event]) -> None:
        return None

    def apply(self, events: list[Event]) -> None:
        return None

    def queue(self, events: list[Event]) -> None:
        return None

    async def emit(self, events: list[Event]) -> None:
        return None
