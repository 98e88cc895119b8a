"""Resume and replay of a 10,000-event run: time taken, and model calls (must be 0).

    python bench/bench_replay.py

The run: 1,000 documents, each classified by a model agent (offline model, no
latency) whose label a second model agent annotates: about 11,000 events.

resume: a copy of the log loses the completion of the last 200 annotations
(outputs and ``task.completed``, as a crash between the model's answer and the
commit leaves it) and its ``run.finished``. Resume folds the log, re-runs the
200 tasks with their answers served from the record, and closes the run.
replay: re-executes the complete run against its record.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import help_or_bad_args, machine, median
from flock_es import Flock
from flock_es.log.event_rows import rebuild_read_models
from flock_es.log.reader import LogReader
from flock_es.projection.fold import fold
from flock_es.runtime.replay import Replayer
from flock_es.runtime.resume import prepare, start_resumed

DOCS = 1000
LOST = 200


class Doc(BaseModel):
    title: str
    text: str


class Label(BaseModel):
    topic: str
    score: int = Field(ge=1, le=5)


class Note(BaseModel):
    remark: str


def build(db: Path) -> Flock:
    flock = Flock(model="offline", db=db)
    flock.agent("classifier").description("Labels a document").consumes(Doc).publishes(Label)
    flock.agent("annotator").description("Annotates a label").consumes(Label).publishes(Note)
    return flock


async def record(db: Path) -> str:
    flock = build(db)
    docs = [
        Doc(title=f"doc {i}", text=f"Document {i} talks about topic {i % 17}.") for i in range(DOCS)
    ]
    await flock.publish_many(docs)
    await flock.run_until_idle()
    await flock.close()
    return flock.run_id


def crash_copy(src: Path, dst: Path, run_id: str) -> None:
    """The log as a crash right after the last LOST annotations' model calls leaves it."""
    shutil.copy(src, dst)
    con = sqlite3.connect(dst)
    tasks = [
        r[0]
        for r in con.execute(
            "SELECT task_id FROM events WHERE kind='task.completed' "
            "AND json_extract(body, '$.agent')='annotator' ORDER BY seq DESC LIMIT ?",
            (LOST,),
        )
    ]
    marks = ",".join("?" * len(tasks))
    con.execute(
        f"DELETE FROM events WHERE kind IN ('artifact.published', 'task.completed') "
        f"AND task_id IN ({marks})",
        tasks,
    )
    con.execute("DELETE FROM events WHERE kind='run.finished' AND run_id=?", (run_id,))
    con.commit()
    con.close()
    rebuild_read_models(dst)


async def resume(db: Path, run_id: str) -> tuple[float, int, int, int]:
    t0 = time.perf_counter()
    with LogReader(db) as reader:
        state = fold(reader.iter_events(run_id))
    folded = state.events
    flock = build(db)
    prepare(flock, state, db, None, Path(__file__))
    relaunched = await start_resumed(flock)
    await flock.run_until_idle()
    await flock.close()
    wall = time.perf_counter() - t0
    return wall, relaunched, flock.engine.model_calls_made, folded


async def replay(db: Path, run_id: str) -> tuple[float, int, bool, int]:
    t0 = time.perf_counter()
    with LogReader(db) as reader:
        events = reader.events(run_id)
    report = await Replayer(events, build(db).agents).run()
    return time.perf_counter() - t0, report.model_calls, report.identical, len(events)


def main() -> None:
    help_or_bad_args(__doc__)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.db"
        run_id = asyncio.run(record(full))
        resumes, replays = [], []
        for i in range(5):
            crashed = Path(tmp) / f"crashed{i}.db"
            crash_copy(full, crashed, run_id)
            wall, relaunched, calls, events = asyncio.run(resume(crashed, run_id))
            assert calls == 0, calls
            resumes.append(wall)
            wall, calls, identical, n = asyncio.run(replay(full, run_id))
            assert calls == 0 and identical
            replays.append(wall)
        print(
            f"resume: {events} events folded, {relaunched} tasks re-run, model calls {calls}: "
            f"median {median(resumes):.3f} s (runs: {', '.join(f'{x:.3f}' for x in resumes)})"
        )
        print(
            f"replay: {n} events, identical, model calls 0: median {median(replays):.3f} s "
            f"(runs: {', '.join(f'{x:.3f}' for x in replays)})"
        )


if __name__ == "__main__":
    main()
