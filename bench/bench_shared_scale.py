"""Workload (b) as a shared run at growing sizes: `flock-es run` on PostgreSQL, and
with ``--share`` on one SQLite file, the run process executing its tasks itself.

    python bench/bench_shared_scale.py                          # 2,000 and 20,000 artifacts
    python bench/bench_shared_scale.py --sizes 2000,20000 --backends postgresql
    python bench/bench_shared_scale.py --root /path/to/base     # another checkout, alternating

Each size publishes N artifacts to 8 ``def`` agents (8N tasks, ``bench/_scale_program.py``)
through the CLI, as a user runs it; every task is claimed under a lease and its
outcome committed in a turn holding the run's lock, as a worker's are. It prints
the run's wall time (its log's ``run.started`` to ``run.finished``), tasks/s,
the process's peak RSS, and each size's tasks/s over the smallest's (flat at
scale is 1.00). With ``--root`` the same sizes run with that checkout's flock-es
too, one after the other, and the table shows both.

PostgreSQL is ``$FLOCK_ES_TEST_PG`` (default postgresql://postgres@127.0.0.1:5432/test);
each measurement uses a database (or file) of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import add_sizes, machine
from flock_es.log.backends import open_reader
from tests.pg import pg_database

HERE = Path(__file__).resolve().parent
PROGRAM = HERE / "_scale_program.py"
ADMIN = os.environ.get("FLOCK_ES_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _run(root: str | None, db: str, n: int, backend: str, cwd: Path) -> tuple[float, int, float]:
    """One run of ``n`` artifacts: (seconds in its log, tasks completed, peak RSS MB)."""
    cmd = [sys.executable, "-m", "flock_es.cli.app", "run", str(PROGRAM), "--db", db, "-q"]
    if backend == "sqlite":
        cmd.append("--share")  # a run on PostgreSQL always is
    env = {
        **os.environ,
        "FLOCK_ES_BENCH_N": str(n),
        "PYTHONPATH": root or str(HERE.parent),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)  # this process's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"flock-es run failed ({proc.returncode}): {err.read()[-500:]}")
    rss = usage.ru_maxrss / 1024
    # From the read models, not the events: a list of a large run's events would grow
    # this process, and the next run's child (forked from it) would count it as its RSS.
    with open_reader(db) as r:
        row = next(row for row in r.runs() if row.run_id == r.resolve_run("latest"))
        done = int(str(r.run_stats()[row.run_id]["done"]))
    assert row.started_at is not None and row.finished_at is not None
    start, end = row.started_at, row.finished_at
    return end - start, done, rss


def _measure(root: str | None, n: int, backend: str) -> tuple[float, int, float]:
    with tempfile.TemporaryDirectory() as d:
        if backend == "sqlite":
            return _run(root, str(Path(d) / "shared.db"), n, backend, Path(d))
        with pg_database(ADMIN, "flock_es_bench") as url:
            return _run(root, url, n, backend, Path(d))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_sizes(ap)
    ap.set_defaults(sizes="2000,20000")
    ap.add_argument("--backends", default="sqlite,postgresql", help="sqlite, postgresql or both")
    ap.add_argument("--root", default=None, help="another flock-es checkout, measured alongside")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    roots: list[str | None] = [None] if args.root is None else [None, args.root]
    print(machine())
    print(f"workload (b) as a shared run, 8 def agents; sizes {sizes}; load {os.getloadavg()}")
    for backend in args.backends.split(","):
        for root in roots:
            label = "this checkout" if root is None else root
            first_rate = 0.0
            for n in sizes:
                secs, done, rss = _measure(root, n, backend)
                rate = done / secs
                first_rate = first_rate or rate
                print(
                    f"  {backend:10} {label}: {n:>7,} artifacts, {done:>7,} tasks: "
                    f"{secs:7.1f} s  {rate:7,.0f} tasks/s  peak RSS {rss:6.0f} MB  "
                    f"rate / smallest {rate / first_rate:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
