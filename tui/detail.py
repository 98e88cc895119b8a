"""What ``enter`` opens: every object of a run, finished ones included.

A task shows its inputs (payloads), outputs, every attempt with its error and
traceback, each model call with the prompt rendered as a chat (system, user,
assistant and tool turns, not escaped JSON), the response, tokens, cost and
duration, and its tool calls with their results. An artifact shows its
payload, its producer, the tasks that consumed it and its visibility. Each
detail lists links (inputs, outputs, consumers, producer) to open next, so the
lineage can be walked both ways.

Example::

    d = task_detail(state, index, reader, "t-editor-digest-000")
    d.title, d.links          # "task t-editor-...", [Link("input", "artifact", "a-..."), ...]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.text import Text

from flock_es.domain.events import (
    Event,
    EventKind,
    ModelAttempt,
    ModelCalled,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    TaskStatus,
    ToolCalled,
    body_as,
)
from flock_es.domain.printable import printable
from flock_es.log.ports import EventReader
from flock_es.projection.state import RunState

from .bounded import DETAIL, bounded, bounded_text, cut_note
from .index import RunIndex
from .on_disk import payload_of, payloads_of
from .rows import fmt_cost, fmt_iso, fmt_seconds, preview

__all__ = ["Detail", "Link", "artifact_detail", "chat", "task_detail"]

ROLE_STYLE = {"system": "magenta", "user": "cyan", "assistant": "green", "tool": "yellow"}


@dataclass(slots=True, frozen=True)
class Link:
    """Something a detail points at: ``kind`` is "task" or "artifact"."""

    label: str
    kind: str
    key: str


@dataclass(slots=True)
class Detail:
    """A detail screen's content: a title, renderables, links to open, and the plain data."""

    title: str
    body: list[RenderableType] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def pretty(value: Any, run: str = "RUN", events: bool = False) -> RenderableType:
    """``value`` as highlighted JSON, its long strings and lists cut (``bounded``: a
    whole document laid out would hold the screen for seconds), saying so above it
    (and where the whole is: ``cut_note``)."""
    shown, cut = bounded(value, DETAIL)
    # ``printable``: JSON escapes C0 controls but not C1 (``\x9b`` is a terminal's CSI).
    text = printable(json.dumps(shown, indent=2, ensure_ascii=False, default=str))
    syntax = Syntax(text, "json", word_wrap=True, theme="ansi_dark", background_color="default")
    return Group(Text(cut_note(run, events), "yellow"), syntax) if cut else syntax


def _content_text(content: Any, run: str = "RUN") -> RenderableType:
    """A message's content: text as text; JSON text or structured parts pretty-printed."""
    if isinstance(content, str):
        stripped = content.strip()
        if stripped[:1] in "{[":
            try:
                return pretty(json.loads(stripped), run, events=True)
            except ValueError:
                pass
        return _long_text(content, run)
    if isinstance(content, list):
        parts = [p.get("text") if isinstance(p, dict) and "text" in p else p for p in content]
        if all(isinstance(p, str) for p in parts):
            return _long_text("\n".join(str(p) for p in parts), run)
    return pretty(content, run, events=True)


def _long_text(text: str, run: str = "RUN") -> RenderableType:
    """``text`` as plain text, cut to a detail's bound (saying so above it)."""
    shown, cut = bounded_text(text, DETAIL)
    return Group(Text(cut_note(run, events=True), "yellow"), Text(shown)) if cut else Text(shown)


def _short_text(value: Any) -> str:
    """``value`` as one string, cut to a detail's bound."""
    return bounded_text(str(value), DETAIL)[0]


def chat(messages: list[dict[str, Any]], run: str = "RUN") -> Group:
    """A prompt as a chat: one titled turn per message (tool calls and results included)."""
    turns: list[RenderableType] = []
    for m in messages:
        role = str(m.get("role", "?"))
        title = role + (f" · {m['name']}" if m.get("name") else "")
        if m.get("tool_call_id"):
            title += f" · result of {m['tool_call_id']}"
        parts: list[RenderableType] = []
        if m.get("content") not in (None, ""):
            parts.append(_content_text(m.get("content"), run))
        for call in m.get("tool_calls") or []:
            fn = call.get("function", call)
            args = _short_text(fn.get("arguments", ""))
            name = printable(str(fn.get("name")))  # the model's words, as its arguments are
            parts.append(Text(f"→ calls {name}({args})", "yellow"))
        style = ROLE_STYLE.get(role, "white")
        turns.append(Panel(Group(*parts), title=title, title_align="left", border_style=style))
    return Group(*turns)


def _task_events(reader: EventReader, run_id: str, seqs: list[int]) -> list[Event]:
    out: list[Event] = []
    for s in seqs:  # a handful of primary-key reads, whatever the size of the run
        out.extend(reader.events(run_id, after=s - 1, until=s))
    return out


def _artifact_block(
    state: RunState, aid: str, role: str, payloads: dict[str, dict[str, Any]]
) -> list[RenderableType]:
    a = state.artifacts.get(aid)
    if a is None:
        return [Text(f"{role} {aid} (not in the log yet)", "dim")]
    head = Text.assemble((f"{role} ", "bold"), f"{a.type} {a.id}", (f" by {a.produced_by}", "dim"))
    return [head, pretty(payloads.get(aid, a.payload), state.run_id)]


def task_detail(state: RunState, index: RunIndex, reader: EventReader, tid: str) -> Detail:
    t = state.tasks[tid]
    events = _task_events(reader, state.run_id, index.task_seqs.get(tid, []))
    failed = t.status is TaskStatus.FAILED
    status = Text("✗ FAILED" if failed else t.status.value, "bold red" if failed else "bold")
    end = t.finished_at
    d = Detail(title=f"task {t.id}")
    d.body.append(
        Text.assemble(
            (f"{t.agent} ", "bold"),
            status,
            f" · attempt {t.attempt} · {t.reason}",
            f" · worker {t.worker}\n" if t.worker else "\n",
            f"scheduled {fmt_iso(t.scheduled_at)} · started {fmt_iso(t.started_at)} · ",
            f"finished {fmt_iso(end)}",
            f" · took {fmt_seconds(end - (t.started_at or t.scheduled_at))}" if end else "",
        )
    )
    d.data = {"task": t.id, "agent": t.agent, "status": t.status.value, "attempt": t.attempt}
    if t.worker:
        d.data["worker"] = t.worker
    d.data.update(inputs=list(t.inputs), outputs=list(t.outputs), error=t.error)
    shown = [*t.inputs, *t.outputs]
    payloads = payloads_of([a for i in shown if (a := state.artifacts.get(i)) is not None], reader)
    for aid in t.inputs:
        d.body.extend(_artifact_block(state, aid, "input", payloads))
        d.links.append(Link(f"input  {_label(state, aid)}", "artifact", aid))
    calls: list[dict[str, Any]] = []
    started: set[int] = set()  # attempts whose task.started is among the events
    for e in events:
        if e.kind is EventKind.TASK_STARTED:
            started.add(body_as(e, TaskStarted).get("attempt", 1))
        elif e.kind is EventKind.TASK_COMPLETED:
            done = body_as(e, TaskCompleted)
            if done.get("attempt", 1) not in started:
                d.body.append(_own_start(done, e.ts))
        d.body.extend(_event_block(e, calls, state.run_id))
    d.data["model_calls"] = calls
    for aid in t.outputs:
        d.body.extend(_artifact_block(state, aid, "output", payloads))
        d.links.append(Link(f"output {_label(state, aid)}", "artifact", aid))
    return d


def _label(state: RunState, aid: str) -> str:
    a = state.artifacts.get(aid)
    return f"{a.type} {aid} by {a.produced_by}" if a is not None else aid


def _own_start(done: TaskCompleted, ts: float) -> RenderableType:
    """The start of an attempt that recorded none (an inline run: its completion says)."""
    began = ts - float(done.get("duration_ms", 0.0)) / 1000.0
    return Rule(f"attempt {done.get('attempt', 1)} started {fmt_iso(began)}", align="left")


def _event_block(e: Event, calls: list[dict[str, Any]], run: str) -> list[RenderableType]:
    when = fmt_iso(e.ts)
    if e.kind is EventKind.TASK_STARTED:
        started = body_as(e, TaskStarted)
        worker = started.get("worker")
        on = f" on worker {worker}" if worker else ""
        return [Rule(f"attempt {started.get('attempt', 1)} started {when}{on}", align="left")]
    if e.kind is EventKind.TASK_FAILED:
        return _failure_block(body_as(e, TaskFailed), run)
    if e.kind is EventKind.MODEL_CALLED:
        return _model_call_block(body_as(e, ModelCalled), calls, run)
    if e.kind is EventKind.TOOL_CALLED:
        b = body_as(e, ToolCalled)
        err = f" ✗ {_short_text(b.get('error'))}" if b.get("error") else ""
        return [
            Text(f"tool {b.get('tool')}({_short_text(b.get('arguments'))}) · {b.get('duration_ms', 0):.0f}ms{err}", "yellow"),
            _content_text(b.get("result", ""), run),
        ]  # fmt: skip
    if e.kind is EventKind.MODEL_ATTEMPT:
        a = body_as(e, ModelAttempt)
        return [
            Text(
                f"model attempt {a.get('attempt')}: {a.get('outcome')} {_short_text(a.get('error'))}",
                "red",
            )
        ]
    return []


def _failure_block(b: TaskFailed, run: str) -> list[RenderableType]:
    retry = " (will retry)" if b.get("will_retry") else ""
    error = _short_text(b.get("error"))
    out: list[RenderableType] = [Text(f"✗ {b.get('error_type')}: {error}{retry}", "bold red")]
    raw = b.get("raw")
    if raw:
        out.append(Panel(_long_text(str(raw), run), title="traceback", border_style="red"))
    return out


def _model_call_block(
    b: ModelCalled, calls: list[dict[str, Any]], run: str
) -> list[RenderableType]:
    req = b.get("request") or {}
    calls.append({"call_index": b.get("call_index"), "model": b.get("model"), "request": req})
    head = (
        f"model call #{b.get('call_index')} · {b.get('model')} · "
        f"{b.get('tokens_in', 0)}+{b.get('tokens_out', 0)} tokens · {fmt_cost(b.get('cost'))}"
        f" · {fmt_seconds(float(b.get('latency_ms') or 0) / 1000)} · attempt {b.get('attempt', 1)}"
    )
    messages = list(req.get("messages") or [])
    out: list[RenderableType] = [Rule(head, align="left", style="cyan")]
    out.append(chat(messages, run) if messages else Text("(no messages recorded)", "dim"))
    reply: dict[str, Any] = {"role": "assistant", "content": b.get("response", "")}
    tool_calls = b.get("tool_calls")
    if tool_calls:
        reply["tool_calls"] = tool_calls
    out.append(chat([reply], run))
    return out


def artifact_detail(state: RunState, index: RunIndex, reader: EventReader, aid: str) -> Detail:
    a = state.artifacts[aid]
    payload = payload_of(a, reader)
    d = Detail(title=f"{a.type} {a.id} by {a.produced_by}")
    consumers = index.consumers.get(aid, [])
    d.body.append(
        Text.assemble(
            ("produced by ", "dim"),
            a.produced_by,
            (" · task ", "dim"),
            a.task_id or "(published from outside)",
            (" · at ", "dim"),
            fmt_iso(a.ts),
            (" · seq ", "dim"),
            str(a.seq),
            (" · visibility ", "dim"),
            json.dumps(a.visibility),
            (" · tags ", "dim"),
            ", ".join(a.tags) or "-",
            (f" · consumed by {len(consumers)} task(s)", "bold"),
        )
    )
    d.body.append(pretty(payload, state.run_id))
    d.data = dict(payload)
    if a.task_id and a.task_id in state.tasks:
        d.links.append(Link(f"producer task {a.task_id} ({a.produced_by})", "task", a.task_id))
    for tid in consumers:
        t = state.tasks.get(tid)
        status = t.status.value if t is not None else "?"
        d.links.append(Link(f"consumer {tid} ({t.agent if t else '?'}, {status})", "task", tid))
    return d


def short(value: Any) -> str:
    return preview(value, 80) if isinstance(value, dict) else str(value)
