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

from rich.markup import escape

from flock_es.domain.printable import printable
from flock_es.log.ports import RunRow
from flock_es.projection.state import AgentView, ArtifactView, RunState, limiter_summary

from .bounded import Bounds, bounded
from .index import RunIndex
from .monitor import LogLine

Row = tuple[str, ...]

RUN_COLUMNS = (
    "run",
    "program",
    "status",
    "started",
    "duration",
    "tasks",
    "failed",
    "cost",
    "fork of",
)
AGENT_COLUMNS = (
    "agent", "status", "sched", "running", "done", "failed", "p50", "p95", "tokens", "cost",
)  # fmt: skip
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


def fmt_ago(ts: float | None, now: float) -> str:
    """A relative time ("3m12s ago"); detail views show the ISO time."""
    if ts is None:
        return ""
    return fmt_seconds(now - ts) + " ago"


def fmt_iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def limiter_line(limiters: dict[str, dict[str, Any]]) -> str:
    """The models' rate limiters (markup), e.g. ``openai/gpt-4o: 8 in flight, limit 8``.

    A limiter the provider answered with 429 is yellow and marked ``⚠ rate limited``,
    so NO_COLOR shows it too. Empty when the run has none (offline models).

    Example::

        limiter_line({"m": {"key": "m", "in_flight": 4, "limit": 8, "rate_limited": 1}})
    """
    parts = []
    for lim in limiters.values():
        text = escape(limiter_summary(lim))
        if lim.get("rate_limited"):
            text = f"[b yellow]{text}, ⚠ rate limited ({lim['rate_limited']}× 429)[/]"
        parts.append(text)
    return " · ".join(parts)


def preview(payload: dict[str, Any], width: int = 400) -> str:
    """``payload`` on one line of at most ``width`` characters.

    Only the start of each long string and list is read (``bounded``): a row of a
    document-sized payload dumped whole cost tens of milliseconds a row."""
    shown, _ = bounded(payload, Bounds(chars=4 * width, items=width))
    text = json.dumps(shown, ensure_ascii=False, separators=(", ", ": "), default=str)
    text = printable(" ".join(text.split()))  # JSON escapes C0 controls, not C1
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
    status: str = ""

    @classmethod
    def parse(cls, text: str) -> Filter:
        agent = type_ = kind = status = ""
        words: list[str] = []
        for tok in text.lower().split():
            key, sep, val = tok.partition(":")
            if sep and key == "agent":
                agent = val
            elif sep and key == "type":
                type_ = val
            elif sep and key == "kind":
                kind = val
            elif sep and key == "status":
                status = val
            else:
                words.append(tok)
        return cls(agent, type_, kind, tuple(words), status)

    def __bool__(self) -> bool:
        return bool(self.agent or self.type or self.kind or self.words or self.status)

    def matches(
        self, *, agent: str = "", type: str = "", kind: str = "", text: str = "", status: str = ""
    ) -> bool:
        if self.status and not status.lower().startswith(self.status):
            return False
        if self.agent and self.agent not in agent.lower():
            return False
        if self.type and self.type not in type.lower():
            return False
        if self.kind and self.kind not in kind.lower():
            return False
        hay = f"{agent} {type} {kind} {text}".lower()
        return all(w in hay for w in self.words)


NO_FILTER = Filter()


def run_rows(
    runs: Iterable[RunRow],
    stats: dict[str, dict[str, Any]],
    now: float,
    flt: Filter = NO_FILTER,
    sort: str = "started",
) -> dict[str, Row]:
    """One row per run, newest first (or by ``sort``: a column name, descending)."""
    out: list[tuple[Any, str, Row]] = []
    for r in runs:
        program = (r.program or "").rsplit("/", 1)[-1]
        st = stats.get(r.run_id, {})
        status = str(st.get("status") or r.status or "")
        if flt and not flt.matches(text=f"{r.run_id} {program}", status=status):
            continue
        end = r.finished_at or float(st.get("last_ts") or r.started_at or 0.0)
        duration = end - (r.started_at or end)
        failed = int(st.get("failed") or 0)
        cost = None if st.get("cost_unknown") else float(st.get("cost") or 0.0)
        row = (
            r.run_id,
            program,
            ("✗ " if status in ("failed", "interrupted") else "") + status,
            fmt_ago(r.started_at, now),
            fmt_seconds(duration),
            str(st.get("scheduled", "")),
            f"{failed} failed" if failed else "",
            fmt_cost(cost) if st else "",
            r.parent_run or "",
        )
        keys = {
            "started": r.started_at or 0.0,
            "status": status,
            "duration": duration,
            "tasks": int(st.get("scheduled") or 0),
            "failed": failed,
            "cost": cost or 0.0,
        }
        out.append((keys.get(sort, keys["started"]), r.run_id, row))
    out.sort(key=lambda x: (x[0], x[1]), reverse=True)
    return {rid: row for _, rid, row in out}


RUN_SORTS = ("started", "status", "duration", "tasks", "failed", "cost")


def agent_status(a: AgentView) -> str:
    """running / N failed / idle: an agent with failures says so, whatever else it did."""
    if a.running:
        return "running"
    if a.failed:
        return f"✗ {a.failed} failed"
    return "idle"


def agent_rows(
    state: RunState, index: RunIndex, flt: Filter = NO_FILTER, loading: bool = False
) -> dict[str, Row]:
    """Per-agent lanes: counts, p50/p95 of finished tasks, tokens, cost."""
    out: dict[str, Row] = {}
    for a in list(state.agents.values()):
        if flt and not flt.matches(agent=a.name, text=a.description):
            continue
        p50, p95 = index.percentile(a.name, 0.5), index.percentile(a.name, 0.95)
        waiting = a.scheduled - a.done - a.failed - a.running
        out[a.name] = (
            a.name,
            "loading" if loading else agent_status(a),
            str(max(waiting, 0)),
            str(a.running),
            str(a.done),
            f"{a.failed} failed" if a.failed else "0",
            fmt_seconds(p50) if p50 is not None else "",
            fmt_seconds(p95) if p95 is not None else "",
            str(a.tokens_in + a.tokens_out),
            fmt_cost(a.cost),
        )
    return out


def artifact_matches(a: ArtifactView, payload: dict[str, Any], flt: Filter) -> bool:
    """Whether artifact ``a`` with ``payload`` (the view's own may be on disk) passes ``flt``."""
    if not flt:
        return True
    return flt.matches(agent=a.produced_by, type=a.type, text=f"{a.id} {preview(payload, 400)}")


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


def agent_detail(state: RunState, index: RunIndex, name: str) -> dict[str, Any]:
    a = state.agents[name]
    recent = index.by_agent.get(name, [])[-20:]
    return {
        "agent": a.name,
        "description": a.description,
        "kind": a.kind,
        "model": a.model or state.model,
        "publishes": a.publishes,
        "subscriptions": a.subscriptions,
        "max_concurrency": a.max_concurrency,
        "tasks": {"scheduled": a.scheduled, "running": a.running, "done": a.done},
        "failed": a.failed,
        "recent tasks": {
            tid: state.tasks[tid].status.value for tid in recent if tid in state.tasks
        },
    }
