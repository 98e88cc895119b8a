"""Memory of the TUI's fold process on a run whose artifacts are documents.

    python bench/bench_tui_memory.py                          # 4,000 documents of 8 KB
    python bench/bench_tui_memory.py --docs 20000 --kb 2 --root /tmp/base   # A/B

The run: ``--docs`` documents of ``--kb`` KB published at once, each read by 4
``def`` agents that each publish a note of the same size (a document pipeline:
5 artifacts and 4 tasks per document), written by the real runtime into a log
in a temporary folder (or ``--db PATH``, kept and reused). Then a fresh process
folds it as ``flock-es tui``'s fold process does (``Monitor.catch_up``) and
prints its wall time, its peak RSS (VmHWM) and that peak less the process's
RSS before folding, per artifact. ``--root DIR`` folds with DIR's TUI too
(another checkout, for a before/after), in alternating fresh processes,
``--repeats`` each, medians printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import machine  # noqa: E402

FOLD = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
from flock_es.log.reader import LogReader
from tui.monitor import Monitor  # the checkout's own (its relative imports stay in it)

def kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1])
    return 0

reader = LogReader(sys.argv[2])
before = kb('VmRSS:')
t0 = time.perf_counter()
m = Monitor(reader)
m.catch_up()
wall = time.perf_counter() - t0
gc.collect()
print(json.dumps({"wall": wall, "hwm_kb": kb('VmHWM:'), "before_kb": before,
                  "tasks": len(m.live.tasks), "artifacts": len(m.live.artifacts)}))
"""


def build(db: Path, docs: int, kb: int) -> None:
    """Write the document run into ``db`` through the real CLI."""
    env = dict(os.environ, BENCH_DOCS=str(docs), BENCH_KB=str(kb))
    env.pop("FLOCK_ES_DB", None)
    cmd = [
        sys.executable,
        "-m",
        "flock_es.cli.app",
        "run",
        str(ROOT / "bench" / "_docs_program.py"),
    ]
    subprocess.run([*cmd, "--db", str(db), "-q"], check=True, env=env, capture_output=True)


def fold_once(root: str, db: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", FOLD, root, str(db)], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def report(label: str, results: list[dict[str, float]]) -> None:
    wall = statistics.median(r["wall"] for r in results)
    hwm = statistics.median(r["hwm_kb"] for r in results) / 1024
    grown = statistics.median(r["hwm_kb"] - r["before_kb"] for r in results)
    arts = results[0]["artifacts"]
    print(
        f"  {label:<14} fold {wall:5.2f} s · peak RSS {hwm:6.0f} MB · grown by the fold "
        f"{grown / 1024:6.0f} MB ({grown * 1024 / max(arts, 1):,.0f} B per artifact)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--docs", type=int, default=4000, help="documents published (4,000)")
    ap.add_argument("--kb", type=int, default=8, help="KB per document and per note (8)")
    ap.add_argument("--db", type=Path, help="the log to write, or reuse if it exists")
    ap.add_argument("--root", help="another checkout whose TUI folds it too (A/B)")
    ap.add_argument("--repeats", type=int, default=3, help="folds per checkout (3)")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "docs.db"
        if not db.exists():
            build(db, args.docs, args.kb)
        print(
            f"log {db}: {args.docs:,} documents of {args.kb} KB, 4 agents "
            f"({db.stat().st_size / 1e6:,.0f} MB)"
        )
        roots = [("this checkout", str(ROOT))] + ([("--root", args.root)] if args.root else [])
        results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in roots}
        for _ in range(args.repeats):
            for label, root in roots:
                results[label].append(fold_once(root, db))
        first = next(iter(results.values()))[0]
        print(f"folded {first['tasks']:,.0f} tasks, {first['artifacts']:,.0f} artifacts; medians:")
        for label, _ in roots:
            report(label, results[label])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
