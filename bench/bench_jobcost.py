"""What a run's checkpoint job costs workload (b): the same run with and without it.

    python bench/bench_jobcost.py                        # 100,000 artifacts, 3 pairs
    python bench/bench_jobcost.py --artifacts 30000 --pairs 5

A run of more than ``FIRST_CHECKPOINT`` (100,000) events starts a checkpoint job
(``runtime/checkpoints.py``): another process, at the lowest priority, that
folds the committed log into snapshots beside the run, so that ``resume`` and
``show --at`` start from a recent one. At 100,000 artifacts (2.6 million events)
its fold took 18-24 CPU-s beside runs of 35-42 s on a 2-core host, on the cores the
run's two threads need. Each pair runs ``bench/_scale_program.py`` (8 ``def`` agents,
a generator of N artifacts) twice in fresh processes, once as shipped and once
with the job switched off (``FLOCK_ES_BENCH_CHECKPOINTS=off``, a bench-only
switch), in alternating order. It prints each run's agent runs per second, the
CPU µs per agent run of the loop's and the writer's threads, and the jobs' CPU
seconds; then the median over the pairs of the ratio within each pair (with the
job over without it): on a shared host a minute's drift moves one pair's runs
together, and the ratio within a pair less than either run. At 2,000 artifacts
(52,000 events) no job starts, so that ratio is the part of bench_scale.py's
"flat at scale" the job accounts for.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine
from bench.bench_scale import db_files, run_program

AGENTS = 8


def _run(n: int, job: bool, db: Path) -> dict[str, Any]:
    """One run of ``n`` artifacts from a generator, with its checkpoint job or without."""
    off = {} if job else {"FLOCK_ES_BENCH_CHECKPOINTS": "off"}
    return run_program(db, n, FLOCK_ES_BENCH_FEED="generator", **off)


def _row(label: str, r: dict[str, Any], runs: int) -> str:
    return (
        f"| {label} | {runs / r['wall']:,.0f} | {r['main_cpu'] / runs * 1e6:.1f} "
        f"| {r['writer_cpu'] / runs * 1e6:.1f} | {r['jobs_cpu']:.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--artifacts", type=int, default=100_000, help="artifacts per run")
    ap.add_argument("--pairs", type=int, default=3, help="pairs of runs (default: 3)")
    args = ap.parse_args()
    if args.artifacts < 1 or args.pairs < 1:
        ap.error("--artifacts and --pairs must be at least 1")
    runs = AGENTS * args.artifacts
    print(machine())
    pairs = f"{args.pairs} pair{'s' if args.pairs > 1 else ''}"
    print(f"workload (b): {args.artifacts:,} artifacts ({runs:,} agent runs), {pairs}")
    print("| Pair, run | runs/s | loop µs/run | writer µs/run | job CPU-s |")
    print("|---|---|---|---|---|", flush=True)
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        for p in range(args.pairs):
            order = (True, False) if p % 2 == 0 else (False, True)
            got: dict[bool, dict[str, Any]] = {}
            for job in order:
                # A run of 100,000 artifacts takes some 40 s: say which one is under way.
                print(
                    f"  pair {p + 1}/{args.pairs}: {'with' if job else 'without'} the job ...",
                    file=sys.stderr,
                    flush=True,
                )
                db = Path(d) / f"p{p}-{'job' if job else 'nojob'}.db"
                got[job] = _run(args.artifacts, job, db)
                for f in db_files(db):
                    f.unlink()  # a 100,000-artifact log is 1.3 GB
            for job in order:
                label = f"{p + 1}, {'with' if job else 'without'} the job"
                print(_row(label, got[job], runs), flush=True)
            ratios.append(got[False]["wall"] / got[True]["wall"])
    print()
    print(
        f"runs/s with the job over without it, within each pair: median "
        f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
