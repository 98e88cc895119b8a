"""The fold's steps for what a task's model and tool calls record:
``model.called`` (the answer, its tokens and cost, counted on the task and its
agent), ``model.attempt`` and the rate limiters' state both carry,
``tool.called`` and ``mcp.listed``. ``fold.apply`` dispatches to these; like
every step they update the state in place, are total and do no I/O.

Apart from ``fold.py`` because these events describe a task's calls, not the
run's artifacts and scheduling; a compact state keeps a call only while its
task is held (``fold_compact.forget_task``). Example::

    model_called(state, event, body_as(event, ModelCalled))  # what apply does for it
"""

from __future__ import annotations

from flock_es.domain.events import Event, McpListed, ModelAttempt, ModelCalled, ToolCalled
from flock_es.projection.state import CallView, RunState, ToolCallView

__all__ = ["mcp_listed", "model_attempt", "model_called", "tool_called"]


def model_called(s: RunState, e: Event, b: ModelCalled) -> None:
    tid = b["task_id"]
    key = (tid, b["call_index"])
    calls = s.calls
    if key in calls or (s.compact and tid not in s.tasks):
        if b.get("limiter"):  # the latest one, which a resume starts its limiter from
            _limiter(s, e, b.get("limiter"))
        return
    cost = b.get("cost")
    tokens_in = b.get("tokens_in") or 0
    tokens_out = b.get("tokens_out") or 0
    # Positional, in the fields' order (task_id, call_index, model, response, tokens_in,
    # tokens_out, cost, latency_ms, seq, tool_calls, attempt): a call by keywords matches
    # each name, and this runs once per answer (issue 14 (e)).
    calls[key] = CallView(
        tid,
        key[1],
        b["model"],
        b["response"],
        tokens_in,
        tokens_out,
        cost,
        b.get("latency_ms", 0.0),
        e.seq,
        list(tool_calls) if (tool_calls := b.get("tool_calls")) else [],
        b.get("attempt", 1),
    )
    # The task's and its agent's counters, spelled out (not a loop over a tuple of both).
    t = s.tasks.get(tid)
    name = b["agent"] or (t.agent if t is not None else "?")
    a = s.agents.get(name) or s.agent_view(name)
    if t is not None:
        t.calls += 1
        t.tokens_in += tokens_in
        t.tokens_out += tokens_out
        t.cost = None if cost is None or t.cost is None else t.cost + cost
    a.calls += 1
    a.tokens_in += tokens_in
    a.tokens_out += tokens_out
    a.cost = None if cost is None or a.cost is None else a.cost + cost
    if b.get("limiter"):
        _limiter(s, e, b.get("limiter"))


def model_attempt(s: RunState, e: Event, b: ModelAttempt) -> None:
    s.model_attempts.append(dict(b, seq=e.seq, ts=e.ts))
    _limiter(s, e, b.get("limiter"))


def _limiter(s: RunState, e: Event, lim: object) -> None:
    if isinstance(lim, dict) and lim.get("key"):
        s.limiters[str(lim["key"])] = dict(lim, ts=e.ts)


def tool_called(s: RunState, e: Event, b: ToolCalled) -> None:
    key = (b["task_id"], b["call_index"], b["position"])
    if key not in s.tool_calls and (not s.compact or b["task_id"] in s.tasks):
        s.tool_calls[key] = ToolCallView(
            task_id=b["task_id"],
            agent=b["agent"],
            call_index=b["call_index"],
            position=b["position"],
            tool=b["tool"],
            arguments=b["arguments"],
            result=b["result"],
            error=b.get("error"),
            seq=e.seq,
        )


def mcp_listed(s: RunState, e: Event, b: McpListed) -> None:
    # The first listing of a task is the one its model calls were made with.
    s.mcp_tools.setdefault(b["task_id"], b["servers"])
