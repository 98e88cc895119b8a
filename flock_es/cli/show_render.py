"""What ``flock-es show`` prints: a folded ``RunState`` as a dict (``--json``) and as text.

The dict is built once and the text is rendered from it, so both outputs hold
the same facts. Sections about gates, joins, the circuit breaker, embargoed
artifacts, retries and tools appear in the text only when they have something
to say; ``--json`` always has their keys (empty lists when nothing happened).

Example::

    data = show_data(load_run(reader, run_id), payloads=False)
    print_show(data, payloads=False)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import typer

from flock_es.cli.error_line import error_line
from flock_es.domain.printable import printable

if TYPE_CHECKING:
    from flock_es.projection.state import ArtifactView, RunState, TaskView

_CLIP = 80
ARGS_CLIP, RESULT_CLIP = 40, 60  # a tool call's line: its arguments, its result or error


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def fmt_cost(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:.4f}"


def clip(text: str, n: int = _CLIP) -> str:
    """``text`` on one line, cut to ``n`` characters. Idempotent: a clipped text clips
    to itself (``show_calls`` clips what it reads before the text view clips it)."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def show_data(
    state: RunState,
    payloads: bool,
    before_end: bool = False,
    calls: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The blackboard of a folded state, as ``show --json`` prints it (a full state).

    A compact state (``show``'s text view: ``show_calls.text_view``) has no artifact
    lists, only their counts, and ``calls`` brings its retried model calls and tool
    calls, read from the log (its completed tasks' are gone from it)."""
    by_type = _artifacts_by_type(state, payloads)
    tasks = _task_list(state)
    batches = _open_batches(state)
    status = _status(state, before_end)
    return {
        "run_id": state.run_id,
        "program": state.program,
        "model": state.model,
        "status": status,
        "parent_run": state.parent_run,
        "fork_seq": state.fork_seq,
        "at_seq": state.last_seq,
        "events": state.events,
        "artifacts": by_type,
        "tasks": state.tasks_by_status(),
        "task_list": tasks,
        "batches": batches,
        "gates": _gates(state),
        "expired_joins": [
            _plain(j, "agent", "sub_index", "key", "members", "reason", "seq", "ts")
            for j in state.expired_joins
        ],
        "circuit_trips": [
            _plain(c, "agent", "sub_index", "inputs", "limit", "depth", "seq")
            for c in state.circuit_trips
        ],
        "tripped": {a.name: a.tripped for a in state.agents.values() if a.tripped},
        "unreleased": _unreleased(state),
        "model_attempts": [
            _plain(
                m,
                "task_id",
                "agent",
                "call_index",
                "attempt",
                "outcome",
                "error",
                "status",
                "will_retry",
                "retry_in",
                "seq",
            )
            for m in state.model_attempts
        ],
        "retried_calls": _retried_calls(state) if calls is None else calls[0],
        "tool_calls": _tool_calls(state) if calls is None else calls[1],
        "totals": state.totals(),
    }


def _artifacts_by_type(state: RunState, payloads: bool) -> dict[str, Any]:
    if state.compact:  # counted in the order the types first came, as ``by_type`` has them
        return {t: {"count": n} for t, n in state.type_counts.items()}
    by_type: dict[str, Any] = {}
    for t, aids in state.by_type.items():
        arts = [state.artifacts[a] for a in aids]
        entry: dict[str, Any] = {"count": len(arts)}
        entry["artifacts"] = [artifact_entry(a, payloads) for a in arts]
        by_type[t] = entry
    return by_type


def artifact_entry(a: ArtifactView, payloads: bool) -> dict[str, Any]:
    """An artifact as ``show --json`` lists it (its payload too with ``payloads``)."""
    return (
        {"id": a.id, "produced_by": a.produced_by, "seq": a.seq}
        | ({"partition_key": a.partition_key} if a.partition_key is not None else {})
        | ({"payload": a.payload} if payloads else {})
    )


def task_entry(task: TaskView) -> dict[str, Any]:
    """A task as ``show --json``'s ``task_list`` lists it."""
    return {
        "id": task.id,
        "agent": task.agent,
        "inputs": task.inputs,
        "reason": task.reason,
        "attempt": task.attempt,
        "outputs": task.outputs,
        "error": task.error,
    }


def _task_list(state: RunState) -> dict[str, list[dict[str, Any]]]:
    tasks: dict[str, list[dict[str, Any]]] = {}
    for task in state.tasks.values():
        tasks.setdefault(task.status.value, []).append(task_entry(task))
    return tasks


def _open_batches(state: RunState) -> list[dict[str, Any]]:
    return [
        {
            "agent": b.agent,
            "sub_index": b.sub_index,
            "members": b.members,
            "size": b.size,
            "deadline": b.deadline,
        }
        for b in state.batches.values()
        if b.members
    ]


def _status(state: RunState, before_end: bool) -> str:
    """The recorded end, else running (``show --at`` before the end), else what is alive."""
    from flock_es.log.liveness import live_status

    return state.finished_status or (
        "running"
        if before_end
        else live_status(
            None,
            state.pid,
            state.host,
            pending=state.has_pending_work(),
            failed=bool(state.failed_tasks()),
        )
    )


def _plain(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d.get(k) for k in keys}


def _gates(state: RunState) -> list[dict[str, Any]]:
    """Every join/AND/count group still waiting, with what it has and what it lacks."""
    out = []
    for gate, group in state.waiting_gates():
        need = _need(state, gate.agent, gate.sub_index)
        have = {t: len(ids) for t, ids in group.by_type.items()}
        out.append(
            {
                "agent": gate.agent,
                "sub_index": gate.sub_index,
                "key": group.key,
                "members": {t: list(ids) for t, ids in group.by_type.items()},
                "need": need,
                "missing": {t: n - have.get(t, 0) for t, n in need.items() if n > have.get(t, 0)},
                "deadline": group.deadline,
            }
        )
    return out


def _need(state: RunState, agent: str, sub_index: int) -> dict[str, int]:
    """How many of each type one firing of the subscription takes (from the run's agent specs)."""
    view = state.agents.get(agent)
    subs = view.subscriptions if view is not None else []
    spec = next((s for s in subs if s.get("index") == sub_index), None)
    if spec is None and 0 <= sub_index < len(subs):
        spec = subs[sub_index]
    return dict(Counter(spec.get("types", []))) if spec is not None else {}


def _unreleased(state: RunState) -> list[dict[str, Any]]:
    """AfterVisibility artifacts still hidden from every agent, with when they are released."""
    out = []
    for aid, due in state.unreleased.items():
        art = state.artifacts.get(aid)
        then = art.visibility.get("then", {}) if art is not None else {}
        out.append(
            {
                "id": aid,
                "type": art.type if art is not None else None,
                "produced_by": art.produced_by if art is not None else None,
                "due": due,
                "then": then.get("kind") if isinstance(then, dict) else None,
            }
        )
    return out


def _retried_calls(state: RunState) -> list[dict[str, Any]]:
    """Model calls that needed more than one attempt before they were answered."""
    return [
        {
            "task_id": c.task_id,
            "agent": state.tasks[c.task_id].agent if c.task_id in state.tasks else None,
            "call_index": c.call_index,
            "attempt": c.attempt,
            "seq": c.seq,
        }
        for c in state.calls.values()
        if c.attempt > 1
    ]


def _tool_calls(state: RunState) -> list[dict[str, Any]]:
    return [
        {
            "task_id": t.task_id,
            "agent": t.agent,
            "call_index": t.call_index,
            "position": t.position,
            "tool": t.tool,
            "arguments": t.arguments,
            "result": t.result,
            "error": t.error,
            "seq": t.seq,
        }
        for t in state.tool_calls.values()
    ]


# --- text ------------------------------------------------------------------


def print_show(data: dict[str, Any], payloads: bool) -> None:
    """Render ``show_data`` for a person."""

    def echo(line: str) -> None:
        # Every line, not each field: an agent's name, a program's path, a join key or
        # a tool's answer may hold control characters; the data keeps them (``--json``).
        typer.echo(printable(line))

    echo(
        f"Run {data['run_id']}  {data['status']}  (at seq {data['at_seq']}, {data['events']} events)"
    )
    echo(f"  program  {data['program']}  ·  model {data['model']}")
    if data["parent_run"]:
        echo(f"  fork of  {data['parent_run']} at seq {data['fork_seq']}")
    echo("Artifacts")
    if not data["artifacts"]:
        echo("  (none)")
    for t, entry in data["artifacts"].items():
        echo(f"  {t}: {entry['count']}")
        if payloads:
            for a in entry["artifacts"]:
                echo(f"    {a['id']} by {a['produced_by']}: {json.dumps(a['payload'])}")
    tasks = data["tasks"]
    echo("Tasks")
    echo("  " + " · ".join(f"{k} {v}" for k, v in tasks.items()))
    for status in ("running", "scheduled", "failed"):
        for t in data["task_list"].get(status, []):
            error = error_line(t["error"] or "", f"flock-es show {data['run_id']} --json")
            extra = f": {error}" if error else ""
            echo(f"  {status:<9} {t['agent']} {t['id']}{extra}")
    echo("Waiting batches")
    if not data["batches"]:
        echo("  (none)")
    for b in data["batches"]:
        size = f"/{b['size']}" if b["size"] else ""
        due = f", timeout at {fmt_time(b['deadline'])}" if b["deadline"] else ""
        echo(f"  {b['agent']}: {len(b['members'])}{size} artifacts{due}")
    for section in (
        _gate_lines,
        _join_lines,
        _trip_lines,
        _embargo_lines,
        _retry_lines,
        _tool_lines,
    ):
        lines = section(data)
        for line in lines:
            echo(line)
    tot = data["totals"]
    echo(
        f"Model calls {tot['calls']} · tokens {tot['tokens_in'] + tot['tokens_out']} "
        f"· cost {fmt_cost(tot['cost'])}"
    )


def _key(key: str) -> str:
    return f" [{key}]" if key else ""


def _gate_lines(data: dict[str, Any]) -> list[str]:
    if not data["gates"]:
        return []
    out = ["Waiting gates"]
    for g in data["gates"]:
        types = list(g["need"]) or list(g["members"])
        have = ", ".join(
            f"{t} {len(g['members'].get(t, []))}" + (f"/{g['need'][t]}" if t in g["need"] else "")
            for t in types
        )
        lacks = ", ".join(f"{n} {t}" for t, n in g["missing"].items())
        due = f", window closes at {fmt_time(g['deadline'])}" if g["deadline"] else ""
        out.append(
            f"  {g['agent']}{_key(g['key'])}: {have}"
            + (f" · waiting for {lacks}" if lacks else "")
            + due
        )
    return out


def _join_lines(data: dict[str, Any]) -> list[str]:
    if not data["expired_joins"]:
        return []
    out = ["Expired joins"]
    for j in data["expired_joins"]:
        members = ", ".join(j["members"] or []) or "no members"
        out.append(
            f"  {j['agent']}{_key(j['key'])}: window passed ({j['reason']}) at seq {j['seq']}, "
            f"members left the gate: {members}"
        )
    return out


def _trip_lines(data: dict[str, Any]) -> list[str]:
    if not data["circuit_trips"]:
        return []
    out = ["Circuit breaker"]
    from flock_es.projection.chain_depth import depth_trips  # as the state: when asked

    trips = data["circuit_trips"]
    deep = depth_trips(trips)
    for agent, n in data["tripped"].items():
        by_depth = deep.get(agent, 0)
        if by_depth:
            limit = _first_limit(trips, agent, by_depth=True)
            out.append(f"  {agent}: tripped {by_depth}× (max_depth: a chain of {limit} agent runs)")
        if n > by_depth:  # max_agent_iterations' refusals
            limit = _first_limit(trips, agent, by_depth=False)
            out.append(f"  {agent}: tripped {n - by_depth}× (limit {limit} runs)")
    for c in data["circuit_trips"]:
        out.append(f"    seq {c['seq']}: not scheduled on {', '.join(c['inputs'])}")
    return out


def _first_limit(trips: list[dict[str, Any]], agent: str, by_depth: bool) -> Any:
    """The limit of ``agent``'s first trip of one kind (``max_depth``'s, or the count's)."""
    return next(
        (c["limit"] for c in trips if c["agent"] == agent and (c["depth"] is not None) == by_depth),
        "?",
    )


def _embargo_lines(data: dict[str, Any]) -> list[str]:
    if not data["unreleased"]:
        return []
    out = ["Not yet visible (AfterVisibility)"]
    for u in data["unreleased"]:
        then = f" as {u['then']}" if u["then"] else ""
        out.append(f"  {u['type']} {u['id']}: released{then} at {fmt_time(u['due'])}")
    return out


def _retry_lines(data: dict[str, Any]) -> list[str]:
    attempts, retried = data["model_attempts"], data["retried_calls"]
    if not attempts and not retried:
        return []
    n = len(attempts)
    out = [f"Model call retries ({n} failed attempt{'' if n == 1 else 's'})"]
    for m in attempts:
        status = f" HTTP {m['status']}" if m["status"] else ""
        then = "retried" if m["will_retry"] else "gave up"
        if m["will_retry"] and m["retry_in"] is not None:
            then += f" in {m['retry_in']:.2f}s"
        out.append(
            f"  {m['agent']} {m['task_id']} call {m['call_index']} attempt {m['attempt']}: "
            f"{m['outcome']}{status} ({clip(m['error'] or '', 50)}), {then}"
        )
    for c in retried:
        out.append(
            f"  {c['agent']} {c['task_id']} call {c['call_index']}: answered on attempt "
            f"{c['attempt']}"
        )
    return out


def _tool_lines(data: dict[str, Any]) -> list[str]:
    if not data["tool_calls"]:
        return []
    out = [f"Tool calls ({len(data['tool_calls'])})"]
    for t in data["tool_calls"]:
        res = f"error: {t['error']}" if t["error"] else t["result"]
        out.append(
            f"  {t['agent']} {t['task_id']} call {t['call_index']}: "
            f"{t['tool']}({clip(t['arguments'], ARGS_CLIP)}) -> {clip(res, RESULT_CLIP)}"
        )
    return out
