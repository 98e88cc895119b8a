"""A worker joining a long shared run: its memory at growing run sizes (issue 14).

    python bench/bench_worker_join.py                      # 2,000, 20,000 and 100,000 artifacts
    python bench/bench_worker_join.py --sizes 2000,20000
    python bench/bench_worker_join.py --root /path/to/other/checkout   # A/B: its flock-es

For each size, in a SQLite file of its own: ``flock-es run PROGRAM --share``
publishes N notes that one function agent answers (N tasks; PROGRAM is written
to a temporary directory), and is SIGKILLed once nine tenths of its tasks
completed. Then one ``flock-es worker PROGRAM`` joins the run and finishes it.
Printed per size: the run's events when the worker starts, the worker's wall
time from its start to the run's last task completed, and its peak RSS (VmHWM,
read from /proc just before it is stopped). A worker that folds the whole run
when it joins holds every completed task and artifact; one that folds it compact
holds the tenth left to do. Last: each size's peak RSS over the smallest's.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: bench.*

from bench._checkout import checkout_cli
from bench._machine import add_sizes, hwm_mb, machine

PROGRAM = textwrap.dedent(
    """
    import os

    from pydantic import BaseModel

    from flock_es import Flock, flock_type

    N = int(os.environ["JOIN_N"])


    @flock_type
    class JNote(BaseModel):
        n: int


    @flock_type
    class JDone(BaseModel):
        n: int


    flock = Flock()


    def count(x: JNote) -> JDone:
        return JDone(n=x.n)


    flock.agent("count").consumes(JNote).publishes(JDone).with_function(count)


    async def main() -> None:
        await flock.publish_many(JNote(n=i) for i in range(N))
    """
)


def _count(db: Path, sql: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute(sql).fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _done(db: Path) -> int:
    return _count(db, "SELECT count(*) FROM events WHERE kind = 'task.completed'")


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(n: int, tmp: Path, root: str | None) -> tuple[int, float, float]:
    """(events in the log when the worker starts, the worker's seconds to finish, its
    peak RSS in MB) for a run of ``n`` notes killed at nine tenths."""
    program, db = tmp / "join_program.py", tmp / f"join{n}.db"
    program.write_text(PROGRAM)
    env = {"JOIN_N": str(n)}
    run = checkout_cli(root, tmp, "run", program, "--db", db, "--share", "-q", env=env)
    while run.poll() is None and _done(db) < n * 9 // 10:
        time.sleep(0.01)
    _stop(run, signal.SIGKILL)
    if _done(db) >= n:
        raise SystemExit(f"the run of {n} notes ended before it could be killed")
    events = _count(db, "SELECT count(*) FROM events")
    t0 = time.perf_counter()
    worker = checkout_cli(root, tmp, "worker", program, "--db", db, env=env)
    while worker.poll() is None and _done(db) < n:
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    if worker.poll() is not None:
        raise SystemExit(f"the worker ended early (exit {worker.returncode})")
    peak = hwm_mb(worker.pid) or 0.0
    _stop(worker, signal.SIGTERM)
    return events, wall, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_sizes(ap)
    ap.add_argument("--root", help="measure the flock-es checked out at ROOT (A/B)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(machine())
    print(f"flock-es: {args.root or 'this checkout'}")
    print("| Notes (tasks) | events at the join | worker: to finish | worker peak RSS |")
    print("|---|---|---|---|")
    peaks = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            events, wall, peak = measure(n, Path(d), args.root)
        peaks.append(peak)
        print(f"| {n:,} | {events:,} | {wall:.1f} s | {peak:.0f} MB |", flush=True)
    ratios = ", ".join(f"{n:,}: {p / peaks[0]:.2f}" for n, p in zip(sizes, peaks, strict=True))
    print(f"peak RSS over the {sizes[0]:,}-note run's: {ratios}")


if __name__ == "__main__":
    main()
