"""What the commits on workload (a)'s path cost on this machine, after an idle.

    python bench/bench_io_floor.py              # 15 repetitions
    python bench/bench_io_floor.py --repeats 31

Workload (a) (the news seed: eight analysts, then the editor, 0.05 s each) has
three commits on its path: the publish (the News and the analysts' schedules),
the analysts' outputs with the editor's schedule, and the editor's output. With
model agents the last two hold paid answers and sync the disk (``fsync``), as
the guarantee says: a paid answer is durable before anything acts on it. The
second and third each come right after the agents' 50 ms of waiting, when this
machine has been idle.

This captures the transactions of one real run of each kind (the ``LogWriter``'s
``_transaction`` calls), then replays the same events through a real
``LogWriter`` into fresh databases, each path commit once after 50 ms of idle
and once straight after another commit, and prints the medians. It also times
the disk alone: a 12 KiB ``pwrite`` (a commit's few pages), then ``fdatasync``,
to a zero-filled file, after the same idle and back to back. A virtual
machine's first write after an idle costs several times a warm one's, and no
spinning of the CPU beforehand changes that (the idle is the disk's, not the
CPU's; ``bench_cold.py`` shows the same of one commit and of the whole seed).
And it times SQLite alone: a one-row commit to a table of no index in each
``synchronous`` mode, the least a durable commit can cost here.

The sum of the path's commits after an idle is a floor under (a)'s overhead
that no change above the log can cross; the one-row commits, three of them (two
syncing, for model agents), are the floor under any log at all.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine
from flock_es.domain.events import Event, EventKind
from flock_es.log import writer as writer_module
from flock_es.log.writer import LogWriter

IDLE = 0.05  # the agents' latency in workload (a)
_PATH_KINDS = {EventKind.ARTIFACT_PUBLISHED}

Txn = tuple[list[Event], bool]  # a transaction's events (seq cleared), whether it synced


def capture(kind: str) -> list[Txn]:
    """The transactions of one run of (a) with ``kind`` agents ("fn" or "model"), in order."""
    from bench._es_side import news_fn
    from bench.bench_core import _news_once

    txns: list[Txn] = []
    real = LogWriter._transaction

    def spy(self: LogWriter, conn: Any, events: list[Event], wait: bool) -> bool:
        fresh = [copy.deepcopy(e) for e in events]  # before the commit sets their seqs
        done = real(self, conn, events, wait)
        if done:
            for e in fresh:
                e.seq = None
            txns.append((fresh, self.synced(fresh)))
        return done

    writer_module.LogWriter._transaction = spy  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as d:
            run = news_fn if kind == "fn" else _news_once
            asyncio.run(run(Path(d) / "warm.db"))  # imports and first-call caches
            txns.clear()
            asyncio.run(run(Path(d) / "a.db"))
    finally:
        writer_module.LogWriter._transaction = real  # type: ignore[method-assign]
    return txns


def on_path(events: list[Event]) -> bool:
    """The commits (a) waits for: those that hold an artifact (the publish, the outputs)."""
    return any(e.kind in _PATH_KINDS for e in events)


def label(events: list[Event]) -> str:
    counts: dict[str, int] = {}
    for e in events:
        counts[e.kind.value] = counts.get(e.kind.value, 0) + 1
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in counts.items())


async def replay(txns: list[Txn], db: Path, idle: bool) -> list[float]:
    """Commit ``txns`` in order through a real writer; the seconds of each path commit
    (after ``IDLE`` of sleep if ``idle``, else straight after the commit before it)."""
    w = await LogWriter.open(db)
    times: list[float] = []
    try:
        for events, _ in txns:
            events = [copy.copy(e) for e in events]
            timed = on_path(events)
            if timed and idle:
                time.sleep(IDLE)  # the process idle, as while the agents wait
            t0 = time.perf_counter()
            if not w.commit_here(events):
                raise SystemExit("the database was locked by another connection")
            if timed:
                times.append(time.perf_counter() - t0)
    finally:
        await w.close()
    return times


def disk_alone(repeats: int) -> dict[str, float]:
    """Medians (seconds) of a 12 KiB pwrite and of the fdatasync after it, idle and warm."""
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        fd = os.open(Path(d) / "f", os.O_RDWR | os.O_CREAT)
        try:
            os.pwrite(fd, bytes(1 << 22), 0)
            os.fsync(fd)
            page = b"x" * (3 * 4096)
            for i in range(repeats * 2):
                idle = i % 2 == 0
                if idle:
                    time.sleep(IDLE)
                t0 = time.perf_counter()
                os.pwrite(fd, page, (i % 300) * len(page))
                t1 = time.perf_counter()
                os.fdatasync(fd)
                t2 = time.perf_counter()
                key = "idle" if idle else "warm"
                out.setdefault(f"pwrite {key}", []).append(t1 - t0)
                out.setdefault(f"fdatasync {key}", []).append(t2 - t1)
        finally:
            os.close(fd)
    return {k: statistics.median(v) for k, v in out.items()}


def sqlite_alone(repeats: int) -> dict[str, float]:
    """Medians (seconds) of a one-row commit to a table of no index, WAL mode, for
    each ``synchronous`` mode, idle and warm: the least any durable commit costs."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        for sync in ("NORMAL", "FULL"):
            conn = sqlite3.connect(Path(d) / f"{sync}.db", isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={sync}")
                conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, body TEXT)")
                for key, idle in (("idle", True), ("warm", False)):
                    times = []
                    for _ in range(repeats):
                        if idle:
                            time.sleep(IDLE)
                        t0 = time.perf_counter()
                        conn.execute("BEGIN IMMEDIATE")
                        conn.execute("INSERT INTO t (body) VALUES (?)", ("x" * 200,))
                        conn.execute("COMMIT")
                        times.append(time.perf_counter() - t0)
                    out[f"{sync} {key}"] = statistics.median(times)
            finally:
                conn.close()
    return out


def measure(kind: str, repeats: int) -> None:
    txns = capture(kind)
    path = [(evs, synced) for evs, synced in txns if on_path(evs)]
    idle_runs: list[list[float]] = []
    warm_runs: list[list[float]] = []
    with tempfile.TemporaryDirectory() as d:
        for r in range(repeats):
            idle_runs.append(asyncio.run(replay(txns, Path(d) / f"i{r}.db", idle=True)))
            warm_runs.append(asyncio.run(replay(txns, Path(d) / f"w{r}.db", idle=False)))
    print(f"\n(a) with {'async def' if kind == 'fn' else 'offline model'} agents:")
    print("| commit on the path | events | syncs | after 50 ms idle | back to back |")
    print("|---|---|---|---|---|")
    for i, (evs, synced) in enumerate(path):
        idle = statistics.median(run[i] for run in idle_runs)
        warm = statistics.median(run[i] for run in warm_runs)
        print(
            f"| {label(evs)} | {len(evs)} | {'yes' if synced else 'no'} | "
            f"{idle * 1e3:.2f} ms | {warm * 1e3:.2f} ms |"
        )
    idle_sum = statistics.median(sum(run) for run in idle_runs)
    warm_sum = statistics.median(sum(run) for run in warm_runs)
    print(f"| **all {len(path)}** | | | **{idle_sum * 1e3:.2f} ms** | {warm_sum * 1e3:.2f} ms |")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="bench_io_floor.py",
        description="What the commits on workload (a)'s path cost here, after an idle.",
    )
    ap.add_argument("--repeats", type=int, default=15, help="fresh databases per kind")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    print(machine())
    print(f"medians of {args.repeats}; databases in {tempfile.gettempdir()}")
    disk = disk_alone(args.repeats)
    print(
        "the disk alone, 12 KiB: pwrite "
        f"{disk['pwrite idle'] * 1e3:.3f} ms after 50 ms idle, {disk['pwrite warm'] * 1e3:.3f} "
        f"back to back; fdatasync {disk['fdatasync idle'] * 1e3:.3f} ms and "
        f"{disk['fdatasync warm'] * 1e3:.3f}"
    )
    raw = sqlite_alone(args.repeats)
    print(
        "SQLite alone, a one-row commit (WAL, no index): synchronous=NORMAL "
        f"{raw['NORMAL idle'] * 1e3:.3f} ms after 50 ms idle, {raw['NORMAL warm'] * 1e3:.3f} "
        f"back to back; FULL {raw['FULL idle'] * 1e3:.3f} and {raw['FULL warm'] * 1e3:.3f}"
    )
    print(
        "so three such commits on (a)'s path take at least "
        f"{3 * raw['NORMAL idle'] * 1e3:.2f} ms after idles (async def agents), and "
        f"{(raw['NORMAL idle'] + 2 * raw['FULL idle']) * 1e3:.2f} ms when two sync "
        "(model agents)"
    )
    for kind in ("fn", "model"):
        measure(kind, args.repeats)
    print("\nissue 14's targets for (a): 1 ms over the ideal (async def), 2 ms (model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
