"""A document pipeline's memory: does a run hold every payload it has seen?

    python bench/bench_documents.py                    # 20, 100 and 300 documents of 1 MB
    python bench/bench_documents.py --docs 1000 --kb 100

The program is ``tests/programs/documents.py``: each document is published one
after another, cleaned into a copy as large, then measured; the run's payloads
add up to twice the documents' size. For each number of documents, in fresh
processes through the CLI: the run's wall time and peak RSS, then ``replay``'s,
then a second run SIGKILLed once half its documents are in the log and its
``resume``'s. Peak RSS is each process's own (``wait4``). A run that held every
payload grows by some 2 MB of RSS per 1 MB document; a bounded one stays near
the first row.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import child_usage, machine  # noqa: E402

PROGRAM = ROOT / "tests" / "programs" / "documents.py"
CLI = [sys.executable, "-m", "flock_es.cli.app"]


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """``flock-es ARGS``: its wall seconds and peak RSS in MB."""
    t0 = time.perf_counter()
    with (cwd / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(
            [*CLI, *args], cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=err
        )
        code, peak, _ = child_usage(proc)
    if code != 0:
        raise SystemExit(f"flock-es {' '.join(args)} failed: {(cwd / 'stderr.txt').read_text()}")
    return time.perf_counter() - t0, peak


def _documents(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            q = "SELECT count(*) FROM artifacts WHERE type = 'Document'"
            return int(con.execute(q).fetchone()[0])
    except sqlite3.Error:
        return 0


def _killed_halfway(db: Path, env: dict[str, str], cwd: Path, docs: int) -> None:
    proc = subprocess.Popen(
        [*CLI, "run", str(PROGRAM), "--db", str(db), "-q"],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while proc.poll() is None and _documents(db) < docs // 2:
        time.sleep(0.05)
    proc.kill()
    proc.wait()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_documents.py", description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, action="append", help="documents (repeatable)")
    ap.add_argument("--kb", type=int, default=1000, help="kilobytes per document")
    args = ap.parse_args(argv)
    print(machine())
    print(f"documents of {args.kb} KB, each cleaned into a copy as large")
    print("| documents | payload MB | run | run RSS | replay | replay RSS | resume | resume RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for docs in args.docs or [20, 100, 300]:
        env = {"DOCS": str(docs), "KB": str(args.kb)}
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            db = tmp / "docs.db"
            run = _run(["run", str(PROGRAM), "--db", str(db), "-q"], env, tmp)
            replay = _run(["replay", "latest", "--db", str(db)], env, tmp)
            killed = tmp / "killed.db"
            _killed_halfway(killed, env, tmp, docs)
            resume = _run(["resume", "latest", "--db", str(killed), "-q"], env, tmp)
        mb = 2 * docs * args.kb / 1000
        cells = [f"{w:.1f} s | {rss:.0f} MB" for w, rss in (run, replay, resume)]
        print(f"| {docs} | {mb:.0f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
