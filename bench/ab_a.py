"""A/B of workload (a) between two flock-es checkouts, interleaved in fresh processes.

    python bench/ab_a.py /work/wt/base /work/wt/mine --pairs 6

Each process runs ``bench_core.py --one a_fn a_model`` from its checkout (a
warm-up, then the median of 5 runs of the news seed: ``async def`` agents
sleeping 0.05 s, and model agents on ``offline?latency=0.05``). Pairs alternate
their order; the table shows the median over the pairs of the ms over the
ideal 0.10 s, the load, and each pair's numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKLOADS = ("a_fn", "a_model")


def _one(root: str, env: dict[str, str]) -> dict[str, float]:
    cmd = [sys.executable, os.path.join(root, "bench", "bench_core.py"), "--one", *WORKLOADS]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    got = {}
    for line in out.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            got[d["workload"]] = float(d["value"])
    return got


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("a", help="a flock-es checkout (its root folder)")
    ap.add_argument("b", help="another flock-es checkout")
    ap.add_argument("--pairs", type=int, default=6, help="interleaved pairs (default: 6)")
    args = ap.parse_args(argv)
    print(f"load before: {os.getloadavg()[0]:.2f}")
    got: dict[str, list[dict[str, float]]] = {args.a: [], args.b: []}
    for p in range(args.pairs):
        order = [args.a, args.b] if p % 2 == 0 else [args.b, args.a]
        for root in order:
            got[root].append(_one(root, dict(os.environ)))
    print(f"load after: {os.getloadavg()[0]:.2f}")
    for root, rows in got.items():
        for w in WORKLOADS:
            vals = [r[w] for r in rows]
            each = " ".join(f"{v:.2f}" for v in vals)
            print(f"{w:8s} {root}: median {statistics.median(vals):5.2f} ms over ideal  ({each})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
