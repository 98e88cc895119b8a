"""Commands on a large log: what they pay for its size before doing their work.

    python bench/bench_big_log.py                      # a log of 100,000 artifacts (~1.3 GB)
    python bench/bench_big_log.py --artifacts 20000    # quicker (~0.26 GB)
    python bench/bench_big_log.py --db PATH            # a log you have (nothing is built)

Builds the log with workload (b) (bench/_scale_program.py, 8 ``def`` agents,
one output each), then times, in fresh processes, ``flock-es run
examples/news.py -q`` (which appends a small run to the large log), ``flock-es
runs`` and ``flock-es show`` of that small run, each beside the same command on
a new log. Each command is timed two ways, alternating, median of ``--repeats``:
as a user runs it one after another (the log is as the last command left it,
marked ``<db>-verified``: no integrity check), and with that mark removed first
(every open checks the file, within its budget: 1 s before writing, 0.2 s
before reading).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT / "examples" / "news.py"
PROGRAM = ROOT / "bench" / "_scale_program.py"
CLI = (sys.executable, "-m", "flock_es.cli.app")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), FLOCK_ES_MODEL="offline", COLUMNS="120")


def _timed(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([*CLI, *args], cwd=cwd, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"flock-es {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return wall


def _build(db: Path, artifacts: int) -> None:
    print(f"building a log of {artifacts:,} artifacts at {db} ...", flush=True)
    env = dict(_env(), FLOCK_ES_BENCH_N=str(artifacts), FLOCK_ES_BENCH_FEED="generator")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(PROGRAM), str(db)], env=env, check=True, cwd=db.parent)
    print(f"  built in {time.perf_counter() - t0:.1f} s", flush=True)


def _commands(db: Path) -> list[tuple[str, list[str]]]:
    return [
        ("run examples/news.py -q", ["run", str(NEWS), "-q", "--db", str(db)]),
        ("runs", ["runs", "--db", str(db)]),
        ("show latest", ["show", "latest", "--db", str(db)]),
    ]


def _measure(db: Path, repeats: int, cwd: Path) -> dict[str, tuple[float, float]]:
    """Median seconds of each command: as left by the last one, and with no mark."""
    mark = db.with_name(db.name + "-verified")
    out: dict[str, tuple[float, float]] = {}
    for name, args in _commands(db):
        marked, unmarked = [], []
        _timed(args, cwd)  # warm: the file's pages in the page cache, the mark written
        for _ in range(repeats):
            marked.append(_timed(args, cwd))
            kept = mark.read_bytes()
            mark.unlink()
            unmarked.append(_timed(args, cwd))
            if not mark.exists():  # a reader leaves no mark: the writer's is still true
                mark.write_bytes(kept)
        out[name] = (statistics.median(marked), statistics.median(unmarked))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=int, default=100_000, help="size of the built log")
    ap.add_argument("--db", type=Path, help="an existing log to use instead (left as it is)")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each command (default 5)")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.db is not None:
            big = tmp / "big.db"  # a copy: the commands append to it
            shutil.copy(args.db, big)
        else:
            big = tmp / "big.db"
            _build(big, args.artifacts)
        small = tmp / "small.db"
        _timed(["run", str(NEWS), "-q", "--db", str(small)], tmp)
        print(f"large log: {big.stat().st_size / 1e9:.2f} GB; new log: {small.stat().st_size:,} B")
        results = {"large": _measure(big, args.repeats, tmp), "new": _measure(small, 3, tmp)}
    print(f"\nmedian wall seconds, fresh processes ({args.repeats} of each on the large log)")
    print("| command | new log | large log | large log, mark removed |")
    print("|---|---|---|---|")
    for name, _ in _commands(big):
        new = results["new"][name][0]
        marked, unmarked = results["large"][name]
        print(f"| `flock-es {name}` | {new:.2f} | {marked:.2f} | {unmarked:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
