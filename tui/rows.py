"""Rows of each view, built from a ``RunState``: pure functions, no widgets.

Every row has a stable key (run id, agent name, task id, artifact id, seq), so
the tables update by diff: a row whose cells changed gets ``update_cell``, a new
key gets ``add_row``, a vanished key gets ``remove_row``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flock_es.domain.events import TaskStatus
from flock_es.log.reader import RunRow
from flock_es.projection.state import ArtifactView, RunState, TaskView

from .monitor import LogLine

Row = tuple[str, ...]

RUN_COLUMNS = ("run", "program", "status", "started (UTC)", "events")
AGENT_COLUMNS = ("agent", "status", "done", "in flight", "failures", "avg", "tokens", "cost")
TASK_COLUMNS = ("task", "agent", "status", "attempt", "elapsed", "inputs")
ARTIFACT_COLUMNS = ("type", "producer", "time", "preview")
BATCH_COLUMNS = ("agent", "buffer", "fill", "held", "open for", "flush in")
LOG_COLUMNS = ("seq", "time", "kind", "agent", "event")


def fmt_seconds(s: float) -> str:
    if s < 0:
        s = 0.0
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def fmt_cost(cost: float | None) -> str:
    return "?" if cost is None else f"${cost:.4f}"


def fmt_utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def preview(payload: dict[str, Any], width: int = 40) -> str:
    text = json.dumps(payload, ensure_ascii=False, separators=(", ", ": "))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def bar(filled: int, total: int, width: int = 16) -> str:
    if total <= 0:
        return "░" * width
    n = min(width, round(width * filled / total))
    return "█" * n + "░" * (width - n)


@dataclass(slots=True, frozen=True)
class Filter:
    """``/`` filter: ``agent:NAME``, ``type:TYPE``, ``kind:KIND`` or free text (all must match).

    Example::

        Filter.parse("agent:editor digest").matches(agent="editor", text="NewsDigest ...")
    """

    agent: str = ""
    type: str = ""
    kind: str = ""
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Filter:
        agent = type_ = kind = ""
        words: list[str] = []
        for tok in text.lower().split():
            key, sep, val = tok.partition(":")
            if sep and key == "agent":
                agent = val
            elif sep and key == "type":
                type_ = val
            elif sep and key == "kind":
                kind = val
            else:
                words.append(tok)
        return cls(agent, type_, kind, tuple(words))

    def __bool__(self) -> bool:
        return bool(self.agent or self.type or self.kind or self.words)

    def matches(self, *, agent: str = "", type: str = "", kind: str = "", text: str = "") -> bool:
        if self.agent and self.agent not in agent.lower():
            return False
        if self.type and self.type not in type.lower():
            return False
        if self.kind and self.kind not in kind.lower():
            return False
        hay = f"{agent} {type} {kind} {text}".lower()
        return all(w in hay for w in self.words)


NO_FILTER = Filter()


def run_rows(runs: Iterable[RunRow], flt: Filter = NO_FILTER) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for r in runs:
        program = (r.program or "").rsplit("/", 1)[-1]
        if flt and not flt.matches(text=f"{r.run_id} {program} {r.status}"):
            continue
        out[r.run_id] = (
            r.run_id,
            program,
            r.status or "",
            fmt_utc(r.started_at),
            str(r.events),
        )
    return out


def agent_rows(state: RunState, flt: Filter = NO_FILTER) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for a in state.agents.values():
        if flt and not flt.matches(agent=a.name, text=a.description):
            continue
        out[a.name] = (
            a.name,
            a.status,
            str(a.done),
            str(a.running),
            str(a.failed),
            fmt_seconds(a.avg_ms / 1000.0) if a.done + a.failed else "",
            str(a.tokens_in + a.tokens_out),
            fmt_cost(a.cost),
        )
    return out


def in_flight(state: RunState) -> list[TaskView]:
    """Tasks scheduled or running, oldest first."""
    tasks = [
        t for t in state.tasks.values() if t.status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING)
    ]
    tasks.sort(key=lambda t: (t.seq or 0, t.id))
    return tasks


def task_row(t: TaskView, now: float) -> Row:
    if t.status is TaskStatus.RUNNING and t.started_at is not None:
        elapsed = fmt_seconds(now - t.started_at)
    else:
        elapsed = "waiting " + fmt_seconds(now - t.scheduled_at)
    return (t.id, t.agent, t.status.value, str(t.attempt), elapsed, str(len(t.inputs)))


def task_rows(state: RunState, now: float, flt: Filter = NO_FILTER) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for t in in_flight(state):
        if flt and not flt.matches(agent=t.agent, text=t.id):
            continue
        out[t.id] = task_row(t, now)
    return out


def artifact_matches(a: ArtifactView, flt: Filter) -> bool:
    if not flt:
        return True
    return flt.matches(agent=a.produced_by, type=a.type, text=f"{a.id} {preview(a.payload, 400)}")


def artifact_row(a: ArtifactView, run_start: float) -> Row:
    return (a.type, a.produced_by, "+" + fmt_seconds(a.ts - run_start), preview(a.payload))


def batch_rows(state: RunState, now: float, flt: Filter = NO_FILTER) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for (agent, sub), b in sorted(state.batches.items()):
        if flt and not flt.matches(agent=agent):
            continue
        held = len(b.members)
        total = b.size or 0
        flush = fmt_seconds(b.deadline - now) if b.deadline is not None else ""
        out[f"{agent}[{sub}]"] = (
            agent,
            f"batch #{sub}",
            bar(held, total),
            f"{held}/{total}" if total else str(held),
            fmt_seconds(now - b.opened_at),
            flush,
        )
    for gate, group in state.waiting_gates():
        if flt and not flt.matches(agent=gate.agent):
            continue
        types = _sub_types(state, gate.agent, gate.sub_index)
        have = sum(1 for t in types if group.by_type.get(t))
        label = f"join {group.key}" if group.key else "AND gate"
        out[f"{gate.agent}[{gate.sub_index}]/{group.key}"] = (
            gate.agent,
            label[:24],
            bar(have, len(types)),
            f"{have}/{len(types)} types",
            fmt_seconds(now - group.opened_at),
            fmt_seconds(group.deadline - now) if group.deadline is not None else "",
        )
    return out


def _sub_types(state: RunState, agent: str, sub_index: int) -> list[str]:
    a = state.agents.get(agent)
    for sub in a.subscriptions if a is not None else []:
        if sub.get("index") == sub_index:
            return list(sub.get("types", []))
    return []


def log_row(line: LogLine, run_start: float) -> Row:
    return (
        str(line.seq),
        "+" + fmt_seconds(line.ts - run_start),
        line.kind,
        line.agent,
        line.summary,
    )


def log_matches(line: LogLine, flt: Filter) -> bool:
    return not flt or flt.matches(agent=line.agent, kind=line.kind, text=line.summary)


def task_detail(state: RunState, t: TaskView) -> dict[str, Any]:
    """Everything the log holds about one task, for the drill-down screen."""
    calls = [
        {
            "call_index": c.call_index,
            "model": c.model,
            "tokens_in": c.tokens_in,
            "tokens_out": c.tokens_out,
            "cost": c.cost,
            "latency_ms": round(c.latency_ms, 1),
        }
        for (tid, _), c in sorted(state.calls.items())
        if tid == t.id
    ]
    return {
        "task": t.id,
        "agent": t.agent,
        "status": t.status.value,
        "attempt": t.attempt,
        "reason": t.reason,
        "inputs": {i: state.artifacts[i].type if i in state.artifacts else "?" for i in t.inputs},
        "outputs": {o: state.artifacts[o].type if o in state.artifacts else "?" for o in t.outputs},
        "error": t.error,
        "model_calls": calls,
    }


def agent_detail(state: RunState, name: str) -> dict[str, Any]:
    a = state.agents[name]
    return {
        "agent": a.name,
        "description": a.description,
        "kind": a.kind,
        "model": a.model or state.model,
        "publishes": a.publishes,
        "subscriptions": a.subscriptions,
        "max_concurrency": a.max_concurrency,
        "tasks": {t.id: t.status.value for t in state.tasks.values() if t.agent == name},
    }


@dataclass(slots=True, frozen=True)
class Span:
    """One bar of the timeline: a task from its start to its end (or now)."""

    agent: str
    task: str
    start: float
    end: float
    status: str
    attempt: int


def timeline(state: RunState, now: float, flt: Filter = NO_FILTER) -> list[Span]:
    """One span per task, grouped by agent (agents in order of their first task)."""
    groups: dict[str, list[Span]] = {}
    for t in sorted(state.tasks.values(), key=lambda t: (t.seq or 0, t.id)):
        if flt and not flt.matches(agent=t.agent, text=t.id):
            continue
        start = t.started_at if t.started_at is not None else t.scheduled_at
        end = t.finished_at if t.finished_at is not None else now
        status = t.status.value
        groups.setdefault(t.agent, []).append(
            Span(t.agent, t.id, start, max(end, start), status, t.attempt)
        )
    return [s for spans in groups.values() for s in spans]
