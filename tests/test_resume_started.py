"""Resume after a crash around a task's ``task.started``, which nothing waits for.

An agent starts once its ``task.scheduled`` is durable; its ``task.started`` is
queued, not awaited (``Executor.start``), and an inline run's is held until the
run suspends (``Executor.start_held``). So a crash can leave a task scheduled
with no start in the log, or started with no outcome. Either way resume runs it
again: once, with the attempt that follows the last recorded start, and the
run ends as an uninterrupted one does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from flock_es.domain.events import Event, EventKind
from flock_es.log.reader import LogReader
from flock_es.log.writer import LogWriter
from flock_es.projection.fold import fold
from tests.conftest import EXAMPLES, run_cli


def _full_run(tmp_path: Path) -> list[Event]:
    db = tmp_path / "full.db"
    out = run_cli(["run", EXAMPLES / "chain.py", "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    with LogReader(db) as reader:
        return reader.events(reader.resolve_run("latest"))


def _crashed(tmp_path: Path, events: list[Event]) -> Path:
    """A log holding ``events`` only (a crash right after their commit)."""
    db = tmp_path / "crashed.db"

    async def write() -> None:
        writer = await LogWriter.open(db)
        for e in events:
            e.seq = None
        await writer.append(events)
        await writer.close()

    asyncio.run(write())
    return db


def _resumed(db: Path) -> list[Event]:
    out = run_cli(["resume", "latest", "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    with LogReader(db) as reader:
        return reader.events(reader.resolve_run("latest"))


def _of(events: list[Event], kind: EventKind, agent: str) -> list[Event]:
    return [e for e in events if e.kind is kind and e.body.get("agent") == agent]


def _payloads(events: list[Event]) -> dict[str, object]:
    state = fold(events)
    return {k: v.payload for k, v in state.artifacts.items()}


def test_a_task_whose_start_never_committed_runs_again_as_its_first_attempt(
    tmp_path: Path,
) -> None:
    full = _full_run(tmp_path)
    # The writer's task is scheduled (its unit is durable), its start is not.
    cut = full.index(_of(full, EventKind.TASK_STARTED, "writer")[0])
    assert _of(full[:cut], EventKind.TASK_SCHEDULED, "writer")
    after = _resumed(_crashed(tmp_path, full[:cut]))
    (started,) = _of(after, EventKind.TASK_STARTED, "writer")
    (completed,) = _of(after, EventKind.TASK_COMPLETED, "writer")
    assert started.body["attempt"] == completed.body["attempt"] == 1
    assert len(_of(after, EventKind.TASK_COMPLETED, "reviewer")) == 1
    assert _payloads(after) == _payloads(full)  # the same ids and outputs


def test_a_task_started_but_never_finished_runs_again_as_its_next_attempt(
    tmp_path: Path,
) -> None:
    full = _full_run(tmp_path)
    # The writer's start is durable, nothing after it: its model was never asked.
    started = _of(full, EventKind.TASK_STARTED, "writer")[0]
    cut = full.index(started) + 1
    assert not _of(full[:cut], EventKind.MODEL_CALLED, "writer")
    after = _resumed(_crashed(tmp_path, full[:cut]))
    assert [e.body["attempt"] for e in _of(after, EventKind.TASK_STARTED, "writer")] == [1, 2]
    (completed,) = _of(after, EventKind.TASK_COMPLETED, "writer")
    assert completed.body["attempt"] == 2
    assert len(_of(after, EventKind.MODEL_CALLED, "writer")) == 1  # asked once, paid once
    assert _payloads(after) == _payloads(full)
