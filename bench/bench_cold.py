"""How much slower the same work runs once the machine has let it go cold.

    python bench/bench_cold.py

Workload (a)'s overhead over the ideal (issue 14) is a handful of small steps
after each agent's wait: an output decided, a commit of a few events, the next
agent started. This prints what those steps cost hot and cold, on this machine:

commit   one small commit through the log writer's own connection and row maker
         (``event_rows.write_events``, 3 events), median of 40 each: back to back;
         after a 50 ms sleep; after a 40 ms sleep and then 10 ms of busy spinning
         on the same core (so not the CPU's idle or frequency state: the commit's
         own code and data have left the caches);
(a)      the news seed's overhead over the ideal with ``async def`` agents, as
         ``bench_core.py --compare`` measures it, at agent latencies of 2, 10
         and 50 ms (median of 7 runs each, after a warm-up): the same work, the
         same number of commits, only the waits between them differ.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _es_side
from bench._machine import help_or_bad_args, machine
from flock_es.domain.event_bodies import TaskCompleted, TaskStarted
from flock_es.domain.events import Event, EventKind, make_event
from flock_es.log.event_rows import write_events
from flock_es.log.schema import PRAGMAS, WRITER_PRAGMAS
from flock_es.log.sqlite_file import ensure_schema


def _unit(run_id: str) -> list[Event]:
    """Three events as an agent's unit commits them: its completion and two starts."""
    now = time.time()
    done: TaskCompleted = {"task_id": "t-1", "agent": "a", "outputs": ["o-1"], "attempt": 1}
    begun: TaskStarted = {"task_id": "t-2", "agent": "a"}
    started = make_event(run_id, EventKind.TASK_STARTED, begun, now)
    return [make_event(run_id, EventKind.TASK_COMPLETED, done, now), started, copy.copy(started)]


def _commit_times(db: Path) -> dict[str, float]:
    """Median µs of a small commit: back to back, after a sleep, after a sleep and a spin."""
    ensure_schema(db, verify=False)
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in (*PRAGMAS, *WRITER_PRAGMAS):  # the writer's own connection policy
        conn.execute(pragma)
    unit = _unit("r-cold")

    def commit() -> float:
        events = [copy.copy(e) for e in unit]
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        write_events(conn, events, int(row[0]))
        conn.execute("COMMIT")
        return (time.perf_counter() - t0) * 1e6

    for _ in range(20):
        commit()
    out: dict[str, float] = {}
    for name, sleep, spin in (
        ("back to back", 0.0, 0.0),
        ("after 50 ms asleep", 0.05, 0.0),
        ("after 40 ms asleep + 10 ms spinning", 0.04, 0.01),
    ):
        times = []
        for _ in range(40):
            if sleep:
                time.sleep(sleep)
            end = time.perf_counter() + spin
            while time.perf_counter() < end:
                pass
            times.append(commit())
        out[name] = statistics.median(times)
    conn.close()
    return out


def _news_overheads(latencies: tuple[float, ...]) -> dict[float, float]:
    """Median ms over the ideal of the news seed with ``async def`` agents, per latency."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for lat in latencies:
            asyncio.run(_es_side.news_fn(Path(d) / f"warm{lat}.db", lat))
            overs = [
                asyncio.run(_es_side.news_fn(Path(d) / f"a{lat}-{i}.db", lat)) * 1e3
                for i in range(7)
            ]
            out[lat] = statistics.median(overs)
    return out


def main() -> int:
    help_or_bad_args(__doc__)
    print(machine())
    with tempfile.TemporaryDirectory() as d:
        commits = _commit_times(Path(d) / "cold.db")
    for name, us in commits.items():
        print(f"commit of 3 events, {name}: {us:7.0f} µs")
    for lat, ms in _news_overheads((0.002, 0.01, 0.05)).items():
        print(f"(a) news seed, agents waiting {lat * 1e3:4.0f} ms: {ms:5.2f} ms over the ideal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
