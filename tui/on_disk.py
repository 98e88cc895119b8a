"""What the screen's fold lets go of once folded, and reads back from the log to show.

The screen folds a run with the runtime's ``apply``, so its state held every
artifact's payload and every model answer (and tool call) of the run, though the
screen shows a few at a time and the log holds them all (a pipeline of 4,000
documents of 8 KB: 216 MB at the fold process's peak, 85 MB without them,
``bench/bench_tui_memory.py``). ``shed`` drops them as each event is folded; the payload of an artifact on screen is read back by its
seq (``payload_of``, ``payloads_of``: one query for a window of rows). Answers
and tool calls need no reading back: a task's detail reads its events.

What stays is what the lists, lanes and counts need: every task's and artifact's
view without its content. Example::

    apply(state, e)
    shed(state, e)
    payload_of(state.artifacts[aid], reader)   # the payload, from the log
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

from flock_es.domain.events import (
    ArtifactPublished,
    Event,
    EventKind,
    ModelCalled,
    ToolCalled,
    body_as,
)
from flock_es.log.ports import EventReader
from flock_es.projection.state import ArtifactView, RunState

__all__ = ["ON_DISK", "payload_of", "payloads_of", "shed"]


class _OnDisk(dict[str, Any]):
    """The payload of a view whose payload is read from the log: empty, and stays so
    (one object shared by every such view, so a write to it would show on all)."""

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("an artifact's payload on disk is read with payload_of")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _read_only

    # Copied or pickled (to the app's process), it stays the one ``payload_of`` knows.
    def __copy__(self) -> dict[str, Any]:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> dict[str, Any]:
        return self

    def __reduce__(self) -> str:
        return "ON_DISK"


ON_DISK: dict[str, Any] = _OnDisk()
"""The payload of every folded artifact view: ``payload_of`` reads the real one."""

_NO_TOOL_CALLS: list[dict[str, Any]] = []
_PUBLISHED = EventKind.ARTIFACT_PUBLISHED
_CALLED = EventKind.MODEL_CALLED
_TOOL = EventKind.TOOL_CALLED


def shed(state: RunState, e: Event) -> None:
    """Drop from ``state`` the content ``e`` (just applied) put there and the log holds:
    an artifact's payload, a model answer's text and tool calls, a tool call's
    arguments and result. Views made by another event are left alone."""
    k = e.kind
    if e.seq is None or k not in (_PUBLISHED, _CALLED, _TOOL):
        return
    if k is _PUBLISHED:
        view = state.artifacts.get(body_as(e, ArtifactPublished)["id"])
        if view is not None and view.seq == e.seq:
            view.payload = ON_DISK
    elif k is _CALLED:
        b = body_as(e, ModelCalled)
        call = state.calls.get((b["task_id"], b["call_index"]))
        if call is not None and call.seq == e.seq:
            call.response, call.tool_calls = "", _NO_TOOL_CALLS
    else:
        t = body_as(e, ToolCalled)
        tool = state.tool_calls.get((t["task_id"], t["call_index"], t["position"]))
        if tool is not None and tool.seq == e.seq:
            tool.arguments = tool.result = ""


def payloads_of(views: Iterable[ArtifactView], reader: EventReader) -> dict[str, dict[str, Any]]:
    """The payloads of ``views`` by artifact id: read from the log (one query) for the
    views ``shed`` emptied, as they are for the others."""
    out: dict[str, dict[str, Any]] = {}
    wanted: dict[int, str] = {}
    for v in views:
        if v.payload is ON_DISK and v.seq is not None:
            wanted[v.seq] = v.id
        else:
            out[v.id] = v.payload
    for e in reader.events_at(sorted(wanted)) if wanted else ():
        b = body_as(e, ArtifactPublished)
        aid = wanted.get(e.seq or 0)
        if aid is not None and e.kind is _PUBLISHED and b.get("id") == aid:
            out[aid] = b["payload"]
    return out


def payload_of(view: ArtifactView, reader: EventReader) -> dict[str, Any]:
    """``view``'s payload (from the log if ``shed`` emptied it; ``{}`` if the log lost it)."""
    if view.payload is not ON_DISK:
        return view.payload
    return payloads_of([view], reader).get(view.id, {})
