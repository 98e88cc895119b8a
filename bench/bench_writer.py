"""The SQLite writer alone, as the log grows: CPU per agent run of each repetition.

    python bench/bench_writer.py --items 2000 --reps 50        # ~100k artifacts
    python bench/bench_writer.py --db /tmp/w.db --keep ...     # keep the file

Workload (b)'s committed units are captured once (``_capture_units``), then
committed again and again, in the same groups, into one file by the writer's own
``write_events`` in this thread (no event loop, no GIL hand-offs): repetition
``r`` stands for artifacts ``r * items`` to ``(r + 1) * items`` of a big run.
Keys repeat across repetitions, but every index written on the hot path is
ordered by seq or by epoch first, so each repetition inserts where a real run
of that size would (timestamps move on with each repetition). Prints, per agent
run, the thread's CPU µs (system time apart) and the bytes it read and wrote
through system calls (WAL frames, checkpoints, page reads: load-robust).

    --drop artifacts_id_e13 --sql "CREATE INDEX ..."   # try another index
"""

from __future__ import annotations

import argparse
import copy
import pickle
import resource
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._capture_units import capture
from flock_es.log.event_rows import write_events
from flock_es.log.schema import PRAGMAS, WRITER_PRAGMAS
from flock_es.log.sqlite_file import ensure_schema


def _io() -> tuple[int, int]:
    """Bytes this thread read and wrote through system calls (page reads, WAL writes)."""
    with open("/proc/thread-self/io") as f:
        got = dict(line.split(": ") for line in f.read().splitlines())
    return int(got["rchar"]), int(got["wchar"])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_writer.py")
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--db", default="/tmp/bench_writer.db")
    ap.add_argument("--units", help="pickle of captured units (made if missing)")
    ap.add_argument("--keep", action="store_true", help="append to an existing --db")
    ap.add_argument("--every", type=int, default=1, help="print every N repetitions")
    ap.add_argument("--drop", default="", help="indexes to drop first (comma-separated)")
    ap.add_argument("--pragma", action="append", default=[], help="e.g. cache_size=-65536")
    ap.add_argument("--sql", action="append", default=[], help="statements run first")
    args = ap.parse_args(argv)
    units_path = Path(args.units) if args.units else None
    if units_path and units_path.exists():
        groups = pickle.loads(units_path.read_bytes())
    else:
        groups = capture(args.items)
        if units_path:
            units_path.write_bytes(pickle.dumps(groups))
    db = Path(args.db)
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    ensure_schema(db, verify=False)
    conn = sqlite3.connect(db, isolation_level=None)
    for p in (*PRAGMAS, *WRITER_PRAGMAS):  # the writer's own connection policy
        conn.execute(p)
    for name in filter(None, args.drop.split(",")):
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    for stmt in args.sql:
        conn.execute(stmt)
    for p in args.pragma:
        conn.execute(f"PRAGMA {p}")
    runs = 8 * args.items
    n_events = sum(len(g) for g in groups)
    print(f"{len(groups)} groups, {n_events} events, {runs} runs per repetition")
    acc = 0.0
    sys_acc = 0.0
    io_acc = [0, 0]
    for r in range(args.reps):
        fresh = [[copy.copy(e) for e in g] for g in groups]
        span = groups[-1][-1].ts - groups[0][0].ts + 1.0
        for g in fresh:  # time goes on: each repetition after the one before
            for e in g:
                e.ts += r * span
        c0 = time.thread_time()
        s0 = resource.getrusage(resource.RUSAGE_THREAD).ru_stime
        r0, w0 = _io()
        for g in fresh:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            write_events(conn, g, int(row[0]))
            conn.execute("COMMIT")
        acc += time.thread_time() - c0
        sys_acc += resource.getrusage(resource.RUSAGE_THREAD).ru_stime - s0
        r1, w1 = _io()
        io_acc[0] += r1 - r0
        io_acc[1] += w1 - w0
        if (r + 1) % args.every == 0:
            print(
                f"rep {r + 1:3d} ({(r + 1) * args.items:7,d} artifacts): "
                f"{acc / (runs * args.every) * 1e6:6.1f} µs/run "
                f"(system {sys_acc / (runs * args.every) * 1e6:5.1f}); bytes/run read "
                f"{io_acc[0] / (runs * args.every):6.0f} written {io_acc[1] / (runs * args.every):6.0f}",
                flush=True,
            )
            acc = sys_acc = 0.0
            io_acc = [0, 0]
    sys_acc = 0.0
    io_acc = [0, 0]
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
