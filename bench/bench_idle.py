"""CPU that waiting costs: `flock-es worker` processes with nothing to do, and a
`flock-es run --no-execute` waiting for workers, on one SQLite file.

    python bench/bench_idle.py                       # 10 s per measurement
    python bench/bench_idle.py --seconds 20 --workers 4
    python bench/bench_idle.py --root /path/to/other/checkout   # also that one, after

Idle: N workers serving a program with no open run (they look for runs and wait
for a commit), their CPU over ``--seconds`` (from /proc, after 3 s to start).
Waiting: one run of 40 slow function agents (each sleeps 1 s, 4 at a time per
worker) shared by one worker; the CPU of the `run --no-execute` process, which
only waits and follows the log, over the run. Printed as % of one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._checkout import checkout_cli
from bench._machine import machine

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = """
import asyncio
from pydantic import BaseModel
from flock_es import Flock, flock_type

@flock_type
class Item(BaseModel):
    n: int

flock = Flock()

async def slow(item: Item) -> None:
    await asyncio.sleep(1.0)

flock.agent("slow").consumes(Item).with_function(slow)

async def main() -> None:
    await flock.publish_many([Item(n=i) for i in range(40)])
"""


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle(root: str, workers: int, seconds: float) -> float:
    """% of a core each idle worker used, on average."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "p.py").write_text(PROGRAM)
        procs = [checkout_cli(root, tmp, "worker", "p.py", "--db", "w.db") for _ in range(workers)]
        try:
            time.sleep(3.0)
            before = [_cpu(p.pid) for p in procs]
            time.sleep(seconds)
            used = [_cpu(p.pid) - b for p, b in zip(procs, before, strict=True)]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)
    return sum(used) / len(used) / seconds * 100


def waiting(root: str) -> tuple[float, float]:
    """The waiting run process's % of a core over the run, and the run's seconds."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "p.py").write_text(PROGRAM)
        worker = checkout_cli(root, tmp, "worker", "p.py", "--db", "w.db", "--concurrency", "4")
        try:
            time.sleep(3.0)
            t0 = time.monotonic()
            run = checkout_cli(root, tmp, "run", "p.py", "--db", "w.db", "--no-execute", "-q")
            _pid, status, usage = os.wait4(run.pid, 0)  # reaped here, with its CPU
            run.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - t0
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    if run.returncode != 0:
        raise SystemExit(f"the run failed (exit {run.returncode})")
    return (usage.ru_utime + usage.ru_stime) / wall * 100, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--root", help="also measure the flock-es checked out there")
    args = ap.parse_args()
    print(machine())
    for root in [str(ROOT), *([args.root] if args.root else [])]:
        per = idle(root, args.workers, args.seconds)
        print(f"{root}: {args.workers} idle workers: {per:.1f}% of a core each")
        share, wall = waiting(root)
        print(
            f"{root}: run --no-execute, {wall:.1f} s waiting for a worker: {share:.1f}% of a core"
        )


if __name__ == "__main__":
    main()
