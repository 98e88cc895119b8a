"""Live progress for ``flock-es run``, and the closing summary."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flock_es.domain.events import Event
from flock_es.projection.state import RunState


def format_cost(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:.4f}"


def limiter_text(lim: dict[str, Any]) -> str:
    """A model's shared concurrency budget: ``openai/gpt-4o: 8 in flight, limit 8, limited``."""
    text = f"{lim.get('key')}: {lim.get('in_flight', 0)} in flight"
    if lim.get("limit") is not None:
        text += f", limit {lim['limit']}"
    if lim.get("queued"):
        text += f", {lim['queued']} queued"
    if lim.get("paused_for"):
        text += f", paused {float(lim['paused_for']):.1f}s"
    return text + ", limited"


class Progress:
    """Redraws a small status panel on stderr; plain lines when stderr is not a terminal."""

    def __init__(self, state_fn: Any, quiet: bool = False) -> None:
        self.console = Console(stderr=True)
        self.state_fn = state_fn
        self.quiet = quiet
        self.t0 = time.time()
        self.live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> Progress:
        if not self.quiet and self.console.is_terminal:
            self.live = Live(
                self._render(),
                console=self.console,
                refresh_per_second=8,
                transient=True,
                get_renderable=self._render,
                redirect_stdout=True,
                redirect_stderr=False,
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def on_events(self, events: list[Event]) -> None:
        if self.quiet or self.live is not None:
            return
        now = time.time()
        if now - self._last_line >= 1.0:
            self._last_line = now
            self.console.print(self._line(), highlight=False)

    def _line(self) -> str:
        s: RunState = self.state_fn()
        by = s.tasks_by_status()
        running = sorted(a.name for a in s.agents.values() if a.running)
        names = ", ".join(running[:6]) + (" …" if len(running) > 6 else "")
        return (
            f"[{time.time() - self.t0:6.1f}s] {by['running']} running"
            + (f" ({names})" if names else "")
            + f" · {by['completed']} done · {by['failed']} failed · {len(s.artifacts)} artifacts"
            + "".join(f" · {limiter_text(lim)}" for lim in s.limiters.values())
        )

    def _render(self) -> Table:
        s: RunState = self.state_fn()
        t = Table.grid(padding=(0, 2))
        t.add_row(Text(self._line(), style="bold"))
        for a in s.agents.values():
            if a.running:
                t.add_row(Text(f"  ▶ {a.name} ({a.running})", style="cyan"))
        counts = " · ".join(f"{k} {v}" for k, v in s.artifact_counts().items())
        if counts:
            t.add_row(Text(f"  artifacts: {counts}", style="dim"))
        return t


def summary_lines(state: RunState, status: str, wall: float, db: str) -> list[str]:
    by = state.tasks_by_status()
    busy = state.busy_ms() / 1000.0
    speed = f" · speedup {busy / wall:.1f}×" if wall > 0 and busy > 0 else ""
    counts = " · ".join(f"{k} {v}" for k, v in state.artifact_counts().items()) or "none"
    tot = state.totals()
    lines = [
        f"Run {state.run_id}  {status}",
        f"  tasks      {by['completed']} done, {by['failed']} failed"
        + (
            f", {by['scheduled'] + by['running']} pending"
            if by["scheduled"] + by["running"]
            else ""
        ),
        f"  artifacts  {counts}",
        f"  time       wall {wall:.2f} s · agent busy {busy:.2f} s{speed}",
        f"  model      {state.model} · {tot['calls']} calls · "
        f"{tot['tokens_in'] + tot['tokens_out']} tokens · cost {format_cost(tot['cost'])}",
    ]
    lines.extend(ledger_lines(state))
    for t in state.failed_tasks():
        lines.append(f"  failed     {t.agent} ({t.id}): {t.error}")
    waiting = [b for b in state.batches.values() if b.members]
    for b in waiting:
        size = f"/{b.size}" if b.size else ""
        lines.append(f"  waiting    batch for {b.agent}: {len(b.members)}{size} artifacts")
    for gate, group in state.waiting_gates():
        key = f" key {group.key!r}" if group.key else ""
        lines.append(f"  waiting    join for {gate.agent}{key}: {len(group.members)} artifacts")
    if state.expired_joins:
        lines.append(f"  expired    {len(state.expired_joins)} join group(s) timed out incomplete")
    for agent in state.agents.values():
        if agent.tripped:
            lines.append(
                f"  circuit    breaker tripped for {agent.name}: stopped after "
                f"{agent.scheduled} runs, {agent.tripped} match(es) not scheduled"
            )
    lines.append(f"  log        {db}  (flock-es show {state.run_id} --db {db})")
    return lines


def ledger_lines(state: RunState, limit: int = 12) -> list[str]:
    """Per-agent model usage, failed attempts and tool calls (the cost ledger).

    Per-agent lines appear when some call cost money or has an unknown price.
    """
    users = [a for a in state.agents.values() if a.calls]
    if all(a.cost == 0.0 for a in users):
        users = []  # nothing was paid for (the offline model): the totals line says it all
    users.sort(key=lambda a: (-(a.cost or 0.0), -(a.tokens_in + a.tokens_out), a.name))
    width = max((len(a.name) for a in users[:limit]), default=0)
    out = [
        f"  per agent  {a.name:<{width}}  {a.calls} call{'s' if a.calls != 1 else ''} · "
        f"{a.tokens_in} in + {a.tokens_out} out tokens · cost {format_cost(a.cost)}"
        for a in users[:limit]
    ]
    if len(users) > limit:
        out.append(f"  per agent  … {len(users) - limit} more (flock-es show)")
    if state.model_attempts:
        kinds: dict[str, int] = {}
        for att in state.model_attempts:
            kinds[att.get("outcome", "?")] = kinds.get(att.get("outcome", "?"), 0) + 1
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        n = len(state.model_attempts)
        out.append(f"  attempts   {n} failed model-call attempt(s): {detail}")
    if state.tool_calls:
        out.append(f"  tools      {len(state.tool_calls)} tool call(s)")
    return out


def print_summary(lines: list[str]) -> None:
    out = sys.stdout
    out.write("\n".join(lines) + "\n")
    out.flush()
