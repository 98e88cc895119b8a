"""A/B of workload (b) between two flock-es checkouts, interleaved in fresh processes.

    python bench/ab_b.py /work/wt/base /work/wt/mine --pairs 4 --kind def

Each process measures one run (after a warm-up) with ``profile_b.py --root DIR``:
runs/s and CPU µs per run of the main thread and the writer thread. Pairs
alternate their order; the table shows medians.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_LINE = re.compile(r"([\d,]+) runs/s\s+CPU µs/run: MainThread ([\d.]+)(?:\s+writer ([\d.]+))?")


def _one(root: str, kind: str, items: int) -> tuple[float, float, float]:
    cmd = [sys.executable, str(HERE / "profile_b.py"), "--root", root, "--kind", kind]
    # The run's snapshot jobs are processes of their own (``python -m``): PYTHONPATH and
    # the working folder (first on a ``-m`` process's path) make them import the same
    # checkout, not the installed one or the one the bench was started in, whose schema
    # may differ (such a job upgraded the base run's file under its writer).
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run(
        [*cmd, "--repeats", "1", "--items", str(items)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    out = done.stdout
    m = _LINE.search(out)
    assert m, out
    return float(m[1].replace(",", "")), float(m[2]), float(m[3] or 0)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("a", help="a flock-es checkout (its root folder)")
    ap.add_argument("b", help="another flock-es checkout")
    ap.add_argument("--pairs", type=int, default=4, help="interleaved pairs (default: 4)")
    ap.add_argument(
        "--kind", default="def", choices=("def", "async"), help="the agents' kind (default: def)"
    )
    ap.add_argument("--items", type=int, default=2000, help="artifacts (default: 2000)")
    args = ap.parse_args(argv)
    got: dict[str, list[tuple[float, float, float]]] = {args.a: [], args.b: []}
    for p in range(args.pairs):
        order = [args.a, args.b] if p % 2 == 0 else [args.b, args.a]
        for root in order:
            got[root].append(_one(root, args.kind, args.items))
    for root, rows in got.items():
        rate = statistics.median(r[0] for r in rows)
        main_cpu = statistics.median(r[1] for r in rows)
        writer = statistics.median(r[2] for r in rows)
        print(
            f"{args.kind:5s} {root}: {rate:8,.0f} runs/s  main {main_cpu:5.1f} µs/run  "
            f"writer {writer:5.1f} µs/run  (n={len(rows)})"
        )
        print("      runs/s each: " + " ".join(f"{r[0]:,.0f}" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
