"""Store queries on 100,000 artifacts (issue 15): median and p95 latency per filter,
with the read models' indexes and without them, and the query plans.

    python bench/bench_store.py                  # SQLite (a temporary file)
    python bench/bench_store.py --n 20000        # fewer artifacts
    python bench/bench_store.py --pg postgresql://postgres@127.0.0.1:5432/bench
                                                 # also PostgreSQL (the database is emptied)

One run holds the artifacts: 10 types, 20 producers, 1,000 correlations, 1 % tagged
``urgent``, 10 % ``blue``, 1 % private. Each query returns a page of 50 and the total,
as ``flock.store.query_artifacts`` does (the last rows go through ``flock.store`` itself).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, median
from flock_es.domain.events import ArtifactPublished, Event, EventKind, RunStarted, make_event
from flock_es.domain.visibility import Identity
from flock_es.log import open_store
from flock_es.log.queries import BoardQueries, where
from flock_es.log.query_models import QUERY_INDEX_NAMES
from flock_es.log.query_values import ArtifactFilter

RUN = "r-bench-store"
T0 = 1_700_000_000.0
INDEXES = QUERY_INDEX_NAMES


def events(n: int) -> list[Event]:
    out = [make_event(RUN, EventKind.RUN_STARTED, RunStarted(model="offline", agents=[]), T0)]
    for i in range(n):
        tags = (["urgent"] if i % 100 == 7 else []) + (["blue"] if i % 10 == 3 else [])
        body = ArtifactPublished(
            id=f"a-{i:06d}",
            type=f"Type{i % 10}",
            payload={"n": i, "text": f"artifact number {i}"},
            produced_by=f"agent{i % 20}",
            correlation_id=f"c-{i % 1000}",
            tags=tags,
        )
        if i % 100 == 42:
            body["visibility"] = {"kind": "private", "agents": ["boss"]}
        out.append(make_event(RUN, EventKind.ARTIFACT_PUBLISHED, body, T0 + i * 0.01))
    return out


async def fill(location: str, n: int) -> float:
    store = open_store(location)
    writer = await store.open_writer()
    evs = events(n)
    t0 = time.perf_counter()
    for i in range(0, len(evs), 5000):
        await writer.append(evs[i : i + 5000])
    await writer.close()
    return time.perf_counter() - t0


def cases(n: int) -> list[tuple[str, ArtifactFilter, Identity | None]]:
    f = ArtifactFilter
    return [
        ("type", f(RUN, types=("Type3",)), None),
        ("produced_by", f(RUN, produced_by=("agent7",)), None),
        ("correlation_id", f(RUN, correlation_id="c-42"), None),
        ("tags (1 %)", f(RUN, tags=("urgent",)), None),
        ("since (last 1 %)", f(RUN, since=T0 + n * 0.0099), None),
        ("type + producer", f(RUN, types=("Type3",), produced_by=("agent13",)), None),
        ("type, as an agent", f(RUN, types=("Type3",)), Identity("worker")),
        ("everything", f(RUN), None),
    ]


def timed(fn: Callable[[], Any], repeat: int) -> str:
    """Wall-clock median and p95, and the median CPU time of this process: on a shared
    machine the CPU time is what the query itself costs."""
    fn()  # warm the cache
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    wall.sort()
    p95 = wall[max(0, int(len(wall) * 0.95) - 1)]
    return f"median {median(wall):7.2f} ms  p95 {p95:7.2f} ms  cpu {median(cpu):6.2f} ms"


def measure(location: str, n: int, repeat: int, plans: bool) -> None:
    with open_store(location, readonly=True).reader() as reader:
        board = BoardQueries(reader)
        for name, flt, viewer in cases(n):
            stats = timed(functools.partial(board.artifacts, flt, limit=50, viewer=viewer), repeat)
            total = board.artifacts(flt, limit=0, viewer=viewer)[1]
            print(f"  {name:<20} {stats}  ({total:,} matches)")
            if plans:  # SQLite's plan for the page query
                clause, args = where(flt)
                sql = f"EXPLAIN QUERY PLAN SELECT a.id FROM artifacts a{clause} ORDER BY a.seq"
                plan = " | ".join(str(r[-1]) for r in reader.query(sql, tuple(args)))
                print(f"  {'':<20} plan: {plan}")
        stats = timed(lambda: board.summary(ArtifactFilter(RUN, types=("Type3",))), repeat)
        print(f"  {'summary (type)':<20} {stats}")
        stats = timed(lambda: board.artifact(f"a-{n // 2:06d}", ArtifactFilter(RUN)), repeat)
        print(f"  {'get(id)':<20} {stats}")


def through_flock_store(location: str, repeat: int) -> None:
    from flock_es import Flock

    flock = Flock(db=location, run_id=RUN)

    async def query() -> None:
        await flock.store.query_artifacts(type="Type3", produced_by="agent13", limit=50)

    loop = asyncio.new_event_loop()
    stats = timed(lambda: loop.run_until_complete(query()), repeat)
    loop.close()
    print(f"  {'flock.store (t+p)':<20} {stats}")


def without_indexes(path: Path) -> Path:
    bare = path.with_name("bare.db")
    shutil.copy(path, bare)
    con = sqlite3.connect(bare)
    for name in INDEXES:
        con.execute(f"DROP INDEX {name}")
    con.execute("CREATE INDEX artifacts_type ON artifacts(run_id, type)")
    con.commit()
    con.close()
    return bare


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=100_000, help="events (default: 100000)")
    ap.add_argument("--repeat", type=int, default=50, help="repetitions (default: 50)")
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL: measure that backend too")
    opts = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        secs = asyncio.run(fill(str(path), opts.n))
        print(f"SQLite, {opts.n:,} artifacts in one run (written in {secs:.1f} s)")
        print(" with the indexes:")
        measure(str(path), opts.n, opts.repeat, plans=True)
        through_flock_store(str(path), opts.repeat)
        print(" without them (schema 2's artifacts_type only):")
        bare = without_indexes(path)
        measure(str(bare), opts.n, max(5, opts.repeat // 10), plans=True)
    if opts.pg:
        from flock_es.log.pg_schema import pg_connect

        with pg_connect(opts.pg) as con:
            con.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        secs = asyncio.run(fill(opts.pg, opts.n))
        with pg_connect(opts.pg) as con:
            con.execute("ANALYZE")
        print(f"PostgreSQL, {opts.n:,} artifacts in one run (written in {secs:.1f} s)")
        measure(opts.pg, opts.n, opts.repeat, plans=False)


if __name__ == "__main__":
    main()
