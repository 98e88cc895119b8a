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
    key = (b["task_id"], b["call_index"])
    if key in s.calls or (s.compact and b["task_id"] not in s.tasks):
        return
    cost = b.get("cost")
    tokens_in = b.get("tokens_in") or 0
    tokens_out = b.get("tokens_out") or 0
    s.calls[key] = CallView(
        task_id=b["task_id"],
        call_index=b["call_index"],
        model=b["model"],
        response=b["response"],
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=cost,
        latency_ms=b.get("latency_ms", 0.0),
        seq=e.seq,
        tool_calls=list(b.get("tool_calls") or ()),
        attempt=b.get("attempt", 1),
    )
    t = s.tasks.get(b["task_id"])
    a = s.agent_view(b["agent"] or (t.agent if t else "?"))
    for view in (t, a):
        if view is None:
            continue
        view.calls += 1
        view.tokens_in += tokens_in
        view.tokens_out += tokens_out
        view.cost = None if cost is None or view.cost is None else view.cost + cost
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
