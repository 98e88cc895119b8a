"""A fan-out log for the TUI's scale test and benchmark: 8 agents x N artifacts.

Every one of ``n`` published ``Item`` artifacts is consumed by each of the 8
agents: ``8 n`` tasks, four events each (scheduled, started, the output
artifact, completed), plus the inputs. With ``n = 12_500`` that is 100,000
tasks and about 412,500 events. One task in ``FAIL_EVERY`` fails with a
traceback instead. Events are written straight through the real
``LogWriter`` (no engine), so a 400k-event log takes seconds, not minutes.

``live=True`` leaves the run open: every task is scheduled, the last
``in_flight`` of them started or waiting, and no ``run.finished``; the
benchmark then commits the rest at a fixed rate.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

from flock_es.domain.events import (
    AgentSpec,
    ArtifactPublished,
    Event,
    EventKind,
    RunStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    trusted_event,
)
from flock_es.log.writer import LogWriter

T0 = 1_735_740_000.0  # 2025-01-01 14:00:00 UTC
FANOUT_RUN = "r-20250101-140000-fanout"
AGENTS = tuple(f"analyst_{i}" for i in range(8))
FAIL_EVERY = 997
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "examples/fanout.py", line 42, in analyse\n'
    "    raise ValueError(item.text)\n"
    "ValueError: cannot analyse item"
)


def _agent_specs() -> list[AgentSpec]:
    return [
        {
            "name": name,
            "description": f"Analyses items ({name})",
            "kind": "model",
            "publishes": ["Analysis"],
            "subscriptions": [{"index": 0, "types": ["Item"]}],
        }
        for name in AGENTS
    ]


def task_id(n: int, agent: int) -> str:
    return f"t-{n:06d}-{agent}"


def start_events(run_id: str = FANOUT_RUN, pid: int | None = None) -> list[Event]:
    """``run.started``; with ``pid`` (and this host) a reader can tell whether it still runs."""
    body: RunStarted = {
        "program": "/demo/fanout.py",
        "model": "offline",
        "agents": _agent_specs(),
    }
    if pid is not None:
        body["pid"], body["host"] = pid, socket.gethostname()
    return [trusted_event(run_id, EventKind.RUN_STARTED, body, T0)]


def publish_and_schedule(n: int, run_id: str = FANOUT_RUN) -> list[Event]:
    """Item ``n`` published and its eight tasks scheduled (one unit, as the runtime commits)."""
    t = T0 + 0.0004 * n
    item = f"a-item-{n:06d}"
    payload = {"n": n, "text": f"item number {n}: a short story about fan-outs"}
    published: ArtifactPublished = {
        "id": item,
        "type": "Item",
        "payload": payload,
        "produced_by": "external",
    }
    out = [trusted_event(run_id, EventKind.ARTIFACT_PUBLISHED, published, t)]
    for i, agent in enumerate(AGENTS):
        body: TaskScheduled = {
            "task_id": task_id(n, i),
            "agent": agent,
            "sub_index": 0,
            "inputs": [item],
            "reason": "match",
        }
        out.append(trusted_event(run_id, EventKind.TASK_SCHEDULED, body, t))
    return out


def run_task(
    n: int, i: int, t: float, run_id: str = FANOUT_RUN, fail_every: int = FAIL_EVERY
) -> list[Event]:
    """Task (n, i) started and finished at ``t``: completed with one output, or failed."""
    tid, agent = task_id(n, i), AGENTS[i]
    duration = 0.05 + 0.01 * ((n * 7 + i * 3) % 40)
    out = [
        trusted_event(
            run_id, EventKind.TASK_STARTED, {"task_id": tid, "agent": agent, "attempt": 1}, t
        )
    ]
    end = t + duration
    if (n * 8 + i) % fail_every == fail_every - 1:
        body: TaskFailed = {
            "task_id": tid,
            "agent": agent,
            "error": "cannot analyse item",
            "error_type": "ValueError",
            "attempt": 1,
            "will_retry": False,
            "duration_ms": duration * 1000,
            "raw": TRACEBACK,
        }
        out.append(trusted_event(run_id, EventKind.TASK_FAILED, body, end))
        return out
    aid = f"a-an-{n:06d}-{i}"
    payload = {"item": n, "agent": agent, "summary": f"analysis {i} of item {n}", "score": i}
    art: ArtifactPublished = {
        "id": aid,
        "type": "Analysis",
        "payload": payload,
        "produced_by": agent,
        "task_id": tid,
    }
    out.append(trusted_event(run_id, EventKind.ARTIFACT_PUBLISHED, art, end))
    done: TaskCompleted = {
        "task_id": tid,
        "agent": agent,
        "outputs": [aid],
        "attempt": 1,
        "duration_ms": 0.0,
    }
    out.append(trusted_event(run_id, EventKind.TASK_COMPLETED, done, end))
    return out


def finished_units(
    n: int, run_id: str = FANOUT_RUN, fail_every: int = FAIL_EVERY
) -> Iterator[list[Event]]:
    """The completed run, one committed unit per item."""
    yield start_events(run_id)
    for k in range(n):
        unit = publish_and_schedule(k, run_id)
        for i in range(len(AGENTS)):
            unit.extend(run_task(k, i, T0 + 0.0004 * k + 0.001 * i, run_id, fail_every))
        yield unit
    yield [trusted_event(run_id, EventKind.RUN_FINISHED, {"status": "completed"}, T0 + 60)]


def live_units(
    n: int, in_flight: int, run_id: str = FANOUT_RUN, pid: int | None = None
) -> Iterator[list[Event]]:
    """An open run: all ``8 n`` tasks scheduled, all but the last ``in_flight`` finished.

    Of the unfinished ones, half are running (started), half still waiting.
    """
    yield start_events(run_id, pid)
    total = n * len(AGENTS)
    for k in range(n):
        yield publish_and_schedule(k, run_id)
    unit: list[Event] = []
    for j in range(total):
        k, i = divmod(j, len(AGENTS))
        t = T0 + 0.0004 * k + 0.001 * i
        if j < total - in_flight:
            unit.extend(run_task(k, i, t, run_id))
        elif j < total - in_flight // 2:
            unit.extend(run_task(k, i, t, run_id)[:1])  # started, not finished
        if len(unit) >= 2000:
            yield unit
            unit = []
    if unit:
        yield unit


async def _write(path: Path, units: Iterator[list[Event]], batch: int = 5000) -> int:
    writer = await LogWriter.open(path)
    count = 0
    pending: list[Event] = []
    try:
        for unit in units:
            pending.extend(unit)
            if len(pending) >= batch:
                await writer.append(pending)
                count += len(pending)
                pending = []
        if pending:
            await writer.append(pending)
            count += len(pending)
    finally:
        await writer.close()
    return count


def write_fanout_log(
    path: Path,
    n: int = 12_500,
    *,
    live: bool = False,
    in_flight: int = 4000,
    fail_every: int = FAIL_EVERY,
    pid: int | None = None,
) -> int:
    """Write the fan-out run to ``path``; returns the number of events written.

    ``pid``: the process recorded as running a live run (a dead one: a crashed run).
    """
    units = live_units(n, in_flight, pid=pid) if live else finished_units(n, fail_every=fail_every)
    return asyncio.run(_write(path, units))
