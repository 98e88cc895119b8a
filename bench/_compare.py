"""``bench_core.py --compare``: flock-es and flock-core 0.5.7 side by side.

Every measurement runs in a fresh process, and the two frameworks alternate
(pair 1: flock-es then flock-core, pair 2: the other way round, ...), so a
machine that gets busier or quieter during the run shifts both alike. The
table shows medians over the pairs and the ratio flock-es / flock-core of the
medians; beside it, the ratio within each pair (the two runs of a pair are
minutes apart at most, so a host whose speed drifts moves both alike): their
median and their range, which says how far one pair can be from another.

    python bench/bench_core.py --compare --flock-core-python ~/venvs/flockcore/bin/python
    python bench/bench_core.py --compare --flock-core-python PY --pairs 3 --only b,c

Workloads (flock-es durable on SQLite in its default durability mode; flock-core
in memory, its default store):

(a) the news seed: 8 analysts on one BreakingNews, an editor batching their 8
    analyses; each agent takes 0.05 s. Wall time minus the ideal 0.10 s.
    flock-es with ``async def`` agents that sleep, and with model agents on the
    offline model (``offline?latency=0.05``); flock-core with engines that sleep.
(b) 8 agents x 2,000 artifacts, one output each: agent runs per second.
(c) 1, 8, 64, 256 agents on one type, no output: cost per agent run.
(e) 200 agents on one artifact, 1 s each: wall time. flock-es with ``async def``
    agents that sleep 1 s and publish nothing, and with model agents on the
    offline model at 1 s latency (each publishes its answer, recorded and fsynced
    first); flock-core with engines that sleep 1 s and publish nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE_SIDE = ROOT / "bench" / "_flock_core_side.py"
C_SIZES = (1, 8, 64, 256)

# workload -> what each side measures in one process
GROUPS = {
    "a": (["a_fn", "a_model"], ["a"]),
    "b": (["b_def", "b_async"], ["b"]),
    "c": (
        [f"c{n}_{k}" for n in C_SIZES for k in ("def", "async")],
        [f"c{n}" for n in C_SIZES],
    ),
    "e": (["e_fn", "e_model"], ["e"]),
}


def _run(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"benchmark process failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    values: dict[str, float] = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            values[d["workload"]] = d["value"]
    return values


def _es(names: list[str]) -> dict[str, float]:
    env = dict(os.environ)
    return _run([sys.executable, str(ROOT / "bench" / "bench_core.py"), "--one", *names], env)


def _core(python: str, names: list[str]) -> dict[str, float]:
    env = dict(os.environ, FLOCK_AUTO_TRACE="false", PYTHONPATH="")
    return {k: v for n in names for k, v in _run([python, str(CORE_SIDE), n], env).items()}


def _row(label: str, core: list[float], es: list[float], unit: str, higher: bool) -> str:
    c, e = statistics.median(core), statistics.median(es)
    ratio = e / c if c else float("nan")
    better = (ratio > 1) if higher else (ratio < 1)
    word = "faster" if better else "slower"
    if unit == "runs/s":
        cs, es_ = f"{c:,.0f}", f"{e:,.0f}"
    elif unit == "µs/run":
        cs, es_ = f"{c:.0f}", f"{e:.0f}"
    elif unit == "s":  # (e): a second and some milliseconds; the milliseconds differ
        cs, es_ = f"{c:.3f}", f"{e:.3f}"
    else:
        cs, es_ = f"{c:.2f}", f"{e:.2f}"
    return f"| {label} | {cs} {unit} | {es_} {unit} | {ratio:.2f} ({word}) | {_pairs(core, es)} |"


def _pairs(core: list[float], es: list[float]) -> str:
    """The ratio flock-es / flock-core within each pair: median (min-max)."""
    ratios = [e / c for c, e in zip(core, es, strict=False) if c]
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def compare(python: str, pairs: int, only: list[str]) -> None:
    from bench._machine import machine

    print(machine())
    print(f"flock-core: {python}; {pairs} interleaved pairs of fresh processes per workload")
    es: dict[str, list[float]] = {}
    core: dict[str, list[float]] = {}
    for w in only:
        es_names, core_names = GROUPS[w]
        for p in range(pairs):
            sides = [("es", es_names), ("core", core_names)]
            for side, names in sides if p % 2 == 0 else sides[::-1]:
                got = _es(names) if side == "es" else _core(python, names)
                for k, v in got.items():
                    (es if side == "es" else core).setdefault(k, []).append(v)
            print(f"  {w}: pair {p + 1}/{pairs} done", file=sys.stderr, flush=True)
    print(
        "\n| Workload | flock-core 0.5.7 | flock-es | Ratio flock-es / flock-core "
        "| Within each pair: median (range) |"
    )
    print("|---|---|---|---|---|")
    if "a" in only:
        print(_row("(a) news, async def agents: over ideal", core["a"], es["a_fn"], "ms", False))
        print(
            _row(
                "(a) news, offline model agents: over ideal", core["a"], es["a_model"], "ms", False
            )
        )
    if "b" in only:
        print(_row("(b) 8 x 2,000, def agents", core["b"], es["b_def"], "runs/s", True))
        print(_row("(b) 8 x 2,000, async def agents", core["b"], es["b_async"], "runs/s", True))
    if "c" in only:
        for n in C_SIZES:
            for k in ("def", "async"):
                label = f"(c) {n} agents, {k}: cost per run"
                print(_row(label, core[f"c{n}"], es[f"c{n}_{k}"], "µs/run", False))
    if "e" in only:
        print(_row("(e) 200 agents x 1 s, async def: wall", core["e"], es["e_fn"], "s", False))
        print(_row("(e) 200 agents x 1 s, model: wall", core["e"], es["e_model"], "s", False))


def one(names: list[str]) -> None:
    """Measure ``names`` in this process and print one JSON line each (flock-es side)."""
    from bench._es_side import measure

    for name in names:
        value = measure(name)
        print(json.dumps({"workload": name, "value": value}), flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="bench_core.py --compare",
        description="flock-es beside flock-core 0.5.7 on workloads (a), (b), (c) and (e), "
        "in interleaved pairs of fresh processes; prints each side's medians and the ratios.",
    )
    ap.add_argument("--compare", action="store_true", help="this comparison (always on here)")
    ap.add_argument(
        "--flock-core-python",
        metavar="PATH",
        help="the python of a venv with flock-core 0.5.7 installed (required)",
    )
    ap.add_argument("--pairs", type=int, default=5, help="pairs per workload (default: 5)")
    ap.add_argument(
        "--only", default="a,b,c,e", help="workloads, comma-separated (default: a,b,c,e)"
    )
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)  # a child's own measure
    args = ap.parse_args(argv)
    if args.one:
        one(args.one)
        return 0
    if not args.flock_core_python:
        ap.error("--compare needs --flock-core-python PATH (a venv with flock-core 0.5.7)")
    compare(args.flock_core_python, args.pairs, [w for w in args.only.split(",") if w])
    return 0
