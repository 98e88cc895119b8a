"""A burst of model agents against a rate-limited provider (issue 11).

    python bench/bench_ratelimit.py                      # 200 agents, 8 in flight, latency 0.2 s
    python bench/bench_ratelimit.py --agents 200 --max-inflight 8 --retry-after 1
    python bench/bench_ratelimit.py --agents 40 --tickets 50 --max-inflight 16 --latency 0.3
    python bench/bench_ratelimit.py --agents 40 --tickets 50 --root /tmp/base   # another checkout
    python bench/bench_ratelimit.py --cap 16       # with --max-concurrent-calls 16 (a global cap)
    python bench/bench_ratelimit.py --agents 40 --tickets 25 --workers 1,2,4   # shared runs

The loopback server (``python -m tests.openai_server --max-inflight N``, a
separate process) answers 429 to every request beyond N in flight. The run is
the real CLI (``flock-es run tests/programs/swarm_program.py``). Printed: wall
time (ideal: tasks / N * latency, a task per agent and ticket), tasks done and
failed, 429s the server sent, the most calls it saw in flight, and the limit the
client learned. ``--root DIR`` runs the flock-es checked out at DIR instead (on
``PYTHONPATH``; the program and the server stay this checkout's), after this
one's, for a before/after in one run. ``--workers 1,2,4`` runs the same
burst as a shared run (``run --no-execute``) served by that many ``flock-es
worker`` processes (``--concurrency 16`` each, or N) on the same SQLite file, one
after the other: each worker has its own limiter, and their sum meets the
provider's limit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import machine  # noqa: E402


def start_server(latency: float, max_inflight: int, retry_after: str | None) -> tuple[Any, int]:
    args = [sys.executable, "-m", "tests.openai_server", "--latency", str(latency)]
    args += ["--max-inflight", str(max_inflight)]
    if retry_after is not None:
        args += ["--retry-after", retry_after]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, port


def one(
    agents: int,
    latency: float,
    max_inflight: int,
    retry_after: str | None,
    tickets: int = 1,
    root: str | None = None,
    cap: int | None = None,
    workers: int = 0,
    concurrency: int = 16,
) -> None:
    server, port = start_server(latency, max_inflight, retry_after)
    served: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "burst.db"
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("FLOCK_ES_", "OPENAI_"))
            }
            env.update(
                OPENAI_API_BASE=f"http://127.0.0.1:{port}/v1",
                OPENAI_API_KEY="sk-bench-0000000000000000000000",
                SWARM_N=str(agents),
                SWARM_TICKETS=str(tickets),
            )
            if root is not None:
                env["PYTHONPATH"] = root
            program = ROOT / "tests" / "programs" / "swarm_program.py"
            cmd = [sys.executable, "-m", "flock_es.cli.app", "run", str(program), "-q"]
            cmd += ["-m", "openai/test-model", "--db", str(db)]
            cmd += ["--max-concurrent-calls", str(cap)] if cap else []
            cmd += ["--no-execute"] if workers else []
            served = [_worker(program, db, env, tmp, concurrency) for _ in range(workers)]
            t0 = time.perf_counter()
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
            wall = time.perf_counter() - t0
            for w in served:
                w.send_signal(signal.SIGTERM)
            for w in served:
                w.communicate(timeout=60)
            con = sqlite3.connect(db)
            rows = con.execute("SELECT kind, body FROM events").fetchall()
            con.close()
    finally:
        for w in served:
            if w.poll() is None:
                w.kill()
        server.send_signal(signal.SIGINT)
        log = server.communicate(timeout=30)[0].strip().splitlines()
    done = sum(1 for k, _ in rows if k == "task.completed")
    failed = sum(1 for k, _ in rows if k == "task.failed")
    limits = [json.loads(b).get("limiter") for k, b in rows if k == "model.called"]
    learned = [x["limit"] for x in limits if x]
    tasks = agents * tickets
    print(
        f"{root or 'this checkout'}: agents {agents} x tickets {tickets} · server allows "
        f"{max_inflight} in flight, latency {latency} s, Retry-After {retry_after or 'none'}"
        + (f", global cap {cap}" if cap else "")
        + (f", {workers} workers (--concurrency {concurrency})" if workers else "")
    )
    print(
        f"  wall {wall:.2f} s (ideal {tasks / max_inflight * latency:.2f} s) · "
        f"{done} done · {failed} failed · exit {out.returncode}"
    )
    print(f"  server: {log[-1] if log else '?'}")
    if learned:
        print(f"  learned limit: first {learned[0]}, last {learned[-1]}, max {max(learned)}")


def _worker(
    program: Path, db: Path, env: dict[str, str], cwd: str, concurrency: int
) -> subprocess.Popen[str]:
    """A ``flock-es worker`` serving ``program``'s shared runs in ``db``, once it has
    opened the log (its first line)."""
    cmd = [sys.executable, "-m", "flock_es.cli.app", "worker", str(program), "--db", str(db)]
    cmd += ["-m", "openai/test-model", "--concurrency", str(concurrency)]
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--max-inflight", type=int, default=8)
    parser.add_argument("--retry-after", default=None, help="seconds, or none")
    parser.add_argument("--tickets", type=int, default=1, help="tickets each agent triages")
    parser.add_argument("--root", default=None, help="also run the checkout at DIR")
    parser.add_argument("--cap", type=int, default=None, help="run with --max-concurrent-calls N")
    parser.add_argument("--concurrency", type=int, default=16, help="each worker's --concurrency")
    parser.add_argument(
        "--workers", default="", help="e.g. 1,2,4: a shared run served by that many workers"
    )
    args = parser.parse_args()
    if args.root is not None and not (Path(args.root) / "flock_es").is_dir():
        parser.error(f"--root {args.root}: no flock_es package there (a flock-es checkout?)")
    print(machine())
    # Both (none and 1 s) unless one is asked for; "none": without only.
    chosen = None if args.retry_after == "none" else args.retry_after
    retry_afters = [chosen] if args.retry_after is not None else [None, "1"]
    counts = [int(n) for n in args.workers.split(",") if n.strip()] or [0]
    for ra in retry_afters:
        for root in [None, args.root] if args.root else [None]:
            for n in counts:
                one(
                    args.agents,
                    args.latency,
                    args.max_inflight,
                    ra,
                    args.tickets,
                    root,
                    args.cap,
                    n,
                    args.concurrency,
                )


if __name__ == "__main__":
    main()
