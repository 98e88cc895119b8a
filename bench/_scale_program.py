"""The program behind bench/bench_scale.py: workload (b), 8 ``def`` agents, N artifacts.

    FLOCK_ES_BENCH_N=2000 python bench/_scale_program.py DB
    FLOCK_ES_BENCH_N=2000 FLOCK_ES_BENCH_FEED=generator python bench/_scale_program.py DB
    FLOCK_ES_BENCH_CHECKPOINTS=off FLOCK_ES_BENCH_N=100000 python bench/_scale_program.py DB

Run directly, it publishes N artifacts (a list of N objects, as workload (b)
does; with ``FLOCK_ES_BENCH_FEED=generator``, a generator, so the program holds
none of them), runs until idle and prints one JSON line: wall seconds, CPU
seconds and peak RSS of this process for the run (wall seconds to idle, and to its
log closed: ``closed_wall``), the CPU seconds of its event
loop's thread and of its SQLite writer's (``main_cpu``, ``writer_cpu``; Linux), and
the peak RSS and CPU seconds of the checkpoint jobs it started (``jobs_rss_mb``,
``jobs_cpu``). With ``FLOCK_ES_BENCH_CHECKPOINTS=off`` the run starts no checkpoint
job (``bench/bench_jobcost.py`` compares the two).
``flock-es resume`` and ``replay`` load the same file (``main`` is not called
on resume).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from flock_es import Flock, flock_type

AGENTS = 8


@flock_type
class Item(BaseModel):
    n: int


@flock_type
class Out(BaseModel):
    n: int


flock = Flock()


def work(x: Item) -> Out:
    return Out(n=x.n)


for i in range(AGENTS):
    flock.agent(f"f{i}").consumes(Item).publishes(Out).with_function(work)


async def main() -> None:
    n = int(os.environ.get("FLOCK_ES_BENCH_N", "2000"))
    if os.environ.get("FLOCK_ES_BENCH_FEED") == "generator":
        # The program never holds its N objects: what is left is flock-es's own memory.
        await flock.publish_many(Item(n=i) for i in range(n))
    else:
        await flock.publish_many([Item(n=i) for i in range(n)])


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name (Linux: read
    from /proc; elsewhere, empty)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, float] = {}
    for t in threading.enumerate():
        try:
            with open(f"/proc/self/task/{t.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[t.name] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def _no_checkpoints() -> None:
    """No checkpoint job for this run: its first checkpoint never comes. A bench-only
    switch (``bench_jobcost.py``), not a setting: a run checkpoints its fold."""
    from flock_es.runtime import run_lifecycle

    # The name ``RunLifecycle.start`` reads (imported there from ``checkpoints``).
    vars(run_lifecycle)["FIRST_CHECKPOINT"] = sys.maxsize


async def measured(db: Path) -> dict[str, float | str]:
    if os.environ.get("FLOCK_ES_BENCH_CHECKPOINTS") == "off":
        _no_checkpoints()
    flock.db_path = db
    await flock.start()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    before = thread_cpu()
    await main()
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    after = thread_cpu()
    # The split between the loop's thread and the writer's: wall is close to their sum
    # when they take turns, close to the larger when they overlap.
    split = {
        k: after[k] - before.get(k, 0.0) for k in ("MainThread", "flock-es-writer") if k in after
    }
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    await flock.close()  # stops and reaps the run's checkpoint jobs
    # Up to the log closed: a run whose WAL never reached a background checkpoint (2,000
    # artifacts) copies all of it into the database here, what larger ones did as they ran.
    closed = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the jobs, reaped by close
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {
        "wall": wall,
        "closed_wall": closed,
        "cpu": cpu,
        "rss_mb": r1.ru_maxrss / 1024,
        "jobs_rss_mb": children.ru_maxrss / 1024,
        "jobs_cpu": children.ru_utime + children.ru_stime,
        "run_id": flock.run_id,
        "main_cpu": split.get("MainThread", 0.0),
        "writer_cpu": split.get("flock-es-writer", 0.0),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measured(Path(sys.argv[1])))), flush=True)
