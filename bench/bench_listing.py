"""The commands that read a whole run, at growing sizes: is their memory flat?

    python bench/bench_listing.py                     # 2,000, 20,000 and 100,000 artifacts
    python bench/bench_listing.py --sizes 2000,5000   # quicker

For each size, one run of workload (b) (bench/_scale_program.py: 8 ``def`` agents,
one output each), then, each in a fresh process (wall time, CPU seconds, peak RSS
from ``wait4``, and what it printed):

fold         the run's full fold (``fold`` of every event, as ``show --json`` and
             ``fork`` held it before they folded compactly): the reference;
show --json  every artifact and task listed (``cli/show_listing.py``);
--payloads   the text view with every artifact's payload;
fork         ``flock-es fork`` at the run's middle event, on a copy of the file:
             the parent's prefix copied into a new run, which then finishes the
             other half (``runtime/fork.py``).

The last lines give each command's peak RSS at the largest size over its peak at
the smallest: flat is near 1 (the issue's bound for a run is 1.5), where the fold's
grows with the run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import add_sizes, child_usage, machine

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "bench" / "_scale_program.py"
FOLD = (
    "import sys; sys.path.insert(0, {bench!r}); import _scale_program; "
    "from flock_es.log.backends import open_reader; from flock_es.projection.fold import fold; "
    "r = open_reader(sys.argv[1]); s = fold(r.iter_events(r.resolve_run('latest'))); "
    "print(len(s.tasks), len(s.artifacts))"
)


def _env(n: int) -> dict[str, str]:
    return dict(os.environ, FLOCK_ES_BENCH_N=str(n), PYTHONPATH=str(ROOT))


def measured(cmd: list[str], n: int) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds, peak RSS (MB) and bytes printed of ``cmd``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=_env(n), stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        errors = proc.stderr.read()
        code, peak, cpu = child_usage(proc)
        wall = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"{' '.join(cmd[2:])} failed: {errors[-1500:].decode()}")
        size = out.tell()
    return wall, cpu, peak, size


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flock_es.cli.app", *args]


def _middle(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT max(seq) FROM events").fetchone()[0]) // 2
    finally:
        con.close()


def one_size(n: int, tmp: Path) -> dict[str, tuple[float, float, float, int]]:
    db = tmp / f"run-{n}.db"
    measured([sys.executable, str(PROGRAM), str(db)], n)
    fold = [sys.executable, "-c", FOLD.format(bench=str(ROOT / "bench")), str(db)]
    copy = tmp / f"fork-{n}.db"
    shutil.copy(db, copy)
    rows = {
        "fold": measured(fold, n),
        "show --json": measured(_cli("show", "latest", "--db", str(db), "--json"), n),
        "--payloads": measured(_cli("show", "latest", "--db", str(db), "--payloads"), n),
        "fork": measured(
            _cli("fork", "latest", "--at", str(_middle(copy)), "--db", str(copy), "-q"), n
        ),
    }
    for f in tmp.iterdir():
        f.unlink()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    add_sizes(ap)
    sizes = [int(s) for s in ap.parse_args().sizes.split(",") if s]
    print(machine())
    print("| Artifacts | command | wall | CPU | peak RSS | printed |")
    print("|---|---|---|---|---|---|")
    peaks: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            for name, (wall, cpu, rss, size) in one_size(n, Path(d)).items():
                peaks.setdefault(name, []).append(rss)
                print(
                    f"| {n:,} | {name} | {wall:.1f} s | {cpu:.1f} s | {rss:.0f} MB "
                    f"| {size / 1e6:.1f} MB |",
                    flush=True,
                )
    if len(sizes) > 1:
        ratios = "; ".join(f"{k} {v[-1] / v[0]:.2f}" for k, v in peaks.items())
        print(f"\npeak RSS at {sizes[-1]:,} over {sizes[0]:,}: {ratios}")


if __name__ == "__main__":
    main()
