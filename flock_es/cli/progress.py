"""Live progress for ``flock-es run``, and the closing summary."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flock_es.cli.error_line import error_line
from flock_es.cli.waiting import waiting_for
from flock_es.domain.events import Event
from flock_es.domain.printable import printable
from flock_es.projection.chain_depth import depth_trips
from flock_es.projection.state import RunState, limiter_summary

__all__ = [
    "DUMB_TERMS",
    "FAILED_SHOWN",
    "Progress",
    "format_cost",
    "ledger_lines",
    "limiter_text",
    "own_work",
    "print_summary",
    "redrawable",
    "stream_kind",
    "summary_lines",
    "time_line",
]


def format_cost(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:.4f}"


def limiter_text(lim: dict[str, Any]) -> str:
    """A model's shared concurrency budget: ``openai/gpt-4o: 8 in flight, limit 8, limited``."""
    return limiter_summary(lim) + ", limited"


# Terminals that cannot redraw a line (Emacs's shell, some CI consoles): rich's Live
# draws nothing on them, so a run showed no progress at all, and ``ESC [ K`` prints as
# it is. Rich's own test (``Console.is_dumb_terminal``).
DUMB_TERMS = frozenset({"dumb", "unknown"})


def redrawable(stream: Any) -> bool:
    """Whether ``stream`` is a terminal that redraws in place (not ``TERM=dumb``)."""
    return stream_kind(stream) == "tty" and os.environ.get("TERM", "").lower() not in DUMB_TERMS


def stream_kind(stream: Any) -> str:
    """``tty``, ``file`` (a regular file or /dev/null) or ``pipe`` (anything else)."""
    try:
        if stream.isatty():
            return "tty"
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return "pipe"
    return "file" if stat.S_ISREG(mode) or stat.S_ISCHR(mode) else "pipe"


class Progress:
    """Live progress on stderr, so that stdout carries only the program's own output.

    - stderr and stdout both terminals: a redrawn panel; the program's prints
      appear above it.
    - stderr a terminal, stdout a file (``> out.txt``): the same panel; the
      program's prints go to the file untouched.
    - stdout a pipe (``| tee out.txt``, whose copy may land on the same
      terminal), stderr not a terminal, or a terminal that cannot redraw
      (``TERM=dumb``): plain lines at most once a second, never wrapped, and
      none before there is something to report.
    """

    def __init__(self, state_fn: Any, quiet: bool = False) -> None:
        self.state_fn = state_fn
        self.quiet = quiet
        self.t0 = time.time()
        self.live: Live | None = None
        self.stdout_kind = stream_kind(sys.stdout)
        panel = redrawable(sys.stderr) and self.stdout_kind != "pipe"
        # Off a terminal rich would hard-wrap at 80 columns: give plain lines room.
        self.console = Console(stderr=True, width=None if panel else 10_000)
        self.panel = panel and not quiet
        self._last_line = self.t0  # the first plain line comes after a second of work
        self._ticker: asyncio.Task[None] | None = None

    def __enter__(self) -> Progress:
        if self.quiet:
            return self
        if self.panel:
            self.live = Live(
                self._render(),
                console=self.console,
                refresh_per_second=8,
                transient=True,
                get_renderable=self._render,
                redirect_stdout=self.stdout_kind == "tty",
                redirect_stderr=False,
            )
            self.live.__enter__()
        else:
            with contextlib.suppress(RuntimeError):  # no running loop: no plain lines
                self._ticker = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
        if self._ticker is not None:
            self._ticker.cancel()

    def on_events(self, events: list[Event]) -> None:
        """Listener hook; the panel and the plain lines both poll the state instead."""

    async def _tick(self) -> None:
        # Plain lines: a new line when the picture changed (at most once a second)
        # or every 10 s as a heartbeat, never before there is work or a timer.
        last = ""
        while True:
            await asyncio.sleep(0.25)
            now = time.time()
            state = self.state_fn()
            if now - self._last_line < 1.0 or not (state.tasks or state.has_pending_work()):
                continue
            line = self._line()
            body = line.split("]", 1)[-1]
            if body != last or now - self._last_line >= 10.0:
                last, self._last_line = body, now
                # Not markup: an agent named ``w[/]k`` raised in the ticker, which then
                # printed no line for the rest of the run, and ``[bold]`` vanished.
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _line(self, waiting: bool = True) -> str:
        s: RunState = self.state_fn()
        by = s.tasks_by_status()
        running = sorted(a.name for a in s.agents.values() if a.running)
        names = ", ".join(running[:6]) + (" …" if len(running) > 6 else "")
        line = (
            f"[{time.time() - self.t0:6.1f}s] {by['running']} running"
            + (f" ({names})" if names else "")
            + f" · {by['completed']} done · {by['failed']} failed · {sum(s.type_counts.values())} artifacts"
            + "".join(f" · {limiter_text(lim)}" for lim in s.limiters.values())
        )
        waits = self._waiting(s) if waiting else ""
        return printable(line + (f" · waiting: {waits}" if waits else ""))

    @staticmethod
    def _waiting(s: RunState) -> str:
        """The timers of a run with nothing running or queued (else the tasks say enough)."""
        by = s.tasks_by_status()
        return "" if by["running"] or by["scheduled"] else waiting_for(s, time.time())

    def _render(self) -> Table:
        s: RunState = self.state_fn()
        t = Table.grid(padding=(0, 2))
        t.add_row(Text(self._line(waiting=False), style="bold"))
        for a in s.agents.values():
            if a.running:
                t.add_row(Text(printable(f"  ▶ {a.name} ({a.running})"), style="cyan"))
        waits = self._waiting(s)
        if waits:  # its own row: on an 80-column terminal the first one is full
            t.add_row(Text(printable(f"  waiting: {waits}"), style="yellow"))
        counts = " · ".join(f"{k} {v}" for k, v in s.artifact_counts().items())
        if counts:
            t.add_row(Text(f"  artifacts: {counts}", style="dim"))
        return t


FAILED_SHOWN = 12
"""Failed tasks the closing summary lists; it counts the rest (``flock-es show`` lists all)."""


def own_work(state: RunState, since: float | None) -> tuple[float, float]:
    """(busy, active) seconds of the task executions that started at or after ``since``.

    ``busy`` sums the executions, less what their model calls waited (for a slot, on
    failed attempts, between attempts: ``waited_ms``); ``active`` is the time at least
    one ran (the union of their intervals). ``since`` is this process's start, so a fork's
    inherited tasks and the tasks a resumed run finished before its crash do
    not count.
    """
    own = [
        (t.started_at, t.finished_at, t.waited)
        for t in state.tasks.values()
        if t.started_at is not None
        and t.finished_at is not None
        and (since is None or t.started_at >= since)
    ]
    # A compact state's completed tasks, as merged spans: they all ran in this process
    # (those finished before a resume were forgotten uncounted).
    spans = sorted([*((start, end) for start, end, _ in own), *state.finished_spans])
    # Less what the executions waited for model-call slots: a run whose provider allows
    # 16 calls at once queues the rest, which is not the agents' work.
    busy = sum(end - start - waited for start, end, waited in own) + state.finished_busy
    # The oldest forgotten executions are summed up to spans_floor (fold._sum_old_spans).
    active, reach = state.finished_active, state.spans_floor
    for start, end in spans:
        if end > reach:
            active += end - max(start, reach)
            reach = end
    return busy, active


def time_line(state: RunState, wall: float, since: float | None) -> str:
    """Wall and busy time; the speedup only where it measures parallel agent work.

    It is shown when the agents were busy for at least a second and at least
    four times as long as the wall time during which none of them ran (start-up,
    loading, waiting for timers): below that it measures overhead, not agents.
    """
    busy, active = own_work(state, since)
    idle = max(wall - active, 0.0)
    line = f"  time       wall {wall:.2f} s · agents busy {busy:.2f} s"
    if wall > 0 and busy >= 1.0 and busy >= 4 * idle:
        line += f" · parallel speedup {busy / wall:.1f}× (busy ÷ wall)"
    return line


def summary_lines(
    state: RunState, status: str, wall: float, db: str, since: float | None = None
) -> list[str]:
    """The closing summary of ``run``, ``resume`` and ``fork``; ``since`` is when
    this process started executing (its own work is what the time line counts)."""
    by = state.tasks_by_status()
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
        time_line(state, wall, since),
        f"  model      {state.model} · {tot['calls']} calls · "
        f"{tot['tokens_in'] + tot['tokens_out']} tokens · cost {format_cost(tot['cost'])}",
    ]
    lines.extend(ledger_lines(state))
    failed = state.failed_tasks()
    # An outage fails thousands alike: the first few say what happened, show lists all.
    for t in failed[:FAILED_SHOWN]:
        error = error_line(t.error or "", f"flock-es show {state.run_id} --json --db {db}")
        lines.append(f"  failed     {t.agent} ({t.id}): {error}")
    if len(failed) > FAILED_SHOWN:
        more = len(failed) - FAILED_SHOWN
        lines.append(f"  failed     … {more} more (flock-es show {state.run_id} --db {db})")
    waiting = [b for b in state.batches.values() if b.members]
    for b in waiting:
        size = f"/{b.size}" if b.size else ""
        lines.append(f"  waiting    batch for {b.agent}: {len(b.members)}{size} artifacts")
    for gate, group in state.waiting_gates():
        key = f" key {group.key!r}" if group.key else ""
        lines.append(f"  waiting    join for {gate.agent}{key}: {len(group.members)} artifacts")
    if state.expired_joins:
        lines.append(f"  expired    {len(state.expired_joins)} join group(s) timed out incomplete")
    deep = depth_trips(state.circuit_trips)
    for agent in state.agents.values():
        counted = agent.tripped - deep.get(agent.name, 0)  # max_agent_iterations' refusals
        if counted > 0:
            lines.append(
                f"  circuit    breaker tripped for {agent.name}: stopped after "
                f"{agent.scheduled} runs, {counted} match(es) not scheduled"
            )
    if deep:
        limit = state.max_depth
        who = ", ".join(f"{name} ({n})" for name, n in deep.items())
        lines.append(
            f"  circuit    a chain of {limit} agent runs reached max_depth: not scheduled "
            f"for {who}; agents feeding each other in a loop? (Flock(max_depth=...))"
        )
    if status == "interrupted":
        lines.append(f"  resume     flock-es resume {state.run_id} --db {db}")
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
    """The summary goes to stderr, like the progress: stdout is the program's."""
    sys.stdout.flush()  # the program's last prints come before the summary
    out = sys.stderr
    # Escaped whole (``printable``): an agent's name in a failed or waiting line, as
    # well as an error, may hold control characters.
    out.write(printable("\n".join(lines)) + "\n")
    out.flush()
