"""Start-up cost of the litellm path (issue 11): time to the first request, and to a missing-key error.

    python bench/bench_first_request.py                 # this checkout
    python bench/bench_first_request.py --src /work/main --runs 3

first request: ``flock-es run examples/news.py -m openai/test-model`` against
    the loopback server (in this process); seconds from spawning the CLI to the
    server receiving the first chat completion, and to the process exiting.
missing key: the same run without ``OPENAI_API_KEY``; seconds to the one-line error.
--workers N: a shared run instead, on a SQLite file: N ``flock-es worker`` processes
    and ``flock-es run --no-execute`` spawned together (the run only publishes);
    seconds to the first request, and until the run process exits. On a machine
    with fewer cores than processes, each litellm import slows the others.

``--src DIR`` runs the flock_es package found in DIR (for a before/after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import machine  # noqa: E402
from tests.openai_server import OpenAIServer  # noqa: E402


def env_for(src: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOCK_ES_", "OPENAI_"))}
    env["PYTHONPATH"] = str(src)
    env.update(extra)
    return env


def stamped_server() -> tuple[OpenAIServer, list[float]]:
    """A loopback server, started, and the list it appends each request's arrival to."""
    server = OpenAIServer().start()
    arrivals: list[float] = []
    handle = server._handle

    def stamped(h: object) -> None:
        arrivals.append(time.perf_counter())
        handle(h)  # type: ignore[arg-type]

    server._handle = stamped  # type: ignore[method-assign]
    return server, arrivals


def first_request(src: Path) -> tuple[float, float]:
    server, arrivals = stamped_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = env_for(src, {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": "sk-bench-0"})
            cmd = [sys.executable, "-m", "flock_es.cli.app", "run", str(src / "examples/news.py")]
            cmd += ["-q", "-m", "openai/test-model", "--db", str(Path(tmp) / "b.db")]
            t0 = time.perf_counter()
            out = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
            total = time.perf_counter() - t0
    finally:
        server.stop()
    if out.returncode != 0 or not arrivals:
        raise SystemExit(f"run failed: {out.stderr[-500:]}")
    return arrivals[0] - t0, total


def shared_first_request(src: Path, workers: int) -> tuple[float, float]:
    """``--workers N``: N workers and a ``run --no-execute`` spawned together."""
    server, arrivals = stamped_server()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = env_for(src, {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": "sk-bench-0"})
            base = [sys.executable, "-m", "flock_es.cli.app"]
            prog, db = str(src / "examples/news.py"), str(Path(tmp) / "s.db")
            model = ["-m", "openai/test-model", "--db", db]
            t0 = time.perf_counter()
            run = subprocess.Popen(
                [*base, "run", prog, "-q", "--no-execute", *model],
                env=env,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(workers):
                procs.append(
                    subprocess.Popen(
                        [*base, "worker", prog, *model],
                        env=env,
                        cwd=tmp,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            _, err = run.communicate(timeout=600)
            total = time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        server.stop()
    if run.returncode != 0 or not arrivals:
        raise SystemExit(f"run failed: {err.decode()[-500:]}")
    return arrivals[0] - t0, total


def missing_key(src: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "flock_es.cli.app", "run", str(src / "examples/news.py")]
        cmd += ["-m", "openai/gpt-4.1", "--db", str(Path(tmp) / "k.db")]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env_for(src, {}), cwd=tmp, capture_output=True, text=True)
        took = time.perf_counter() - t0
    if out.returncode != 2:
        raise SystemExit(f"expected a missing-key error: {out.stderr[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--src", type=Path, default=ROOT)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="a shared run with N workers")
    args = parser.parse_args()
    src = args.src.resolve()
    print(machine())
    print(f"source: {src}")
    if args.workers:
        runs = [shared_first_request(src, args.workers) for _ in range(args.runs)]
        print(
            f"{args.workers} workers and run --no-execute: first request median "
            f"{statistics.median(r[0] for r in runs):.2f} s  "
            f"(runs: {', '.join(f'{r[0]:.2f}' for r in runs)}); "
            f"run done median {statistics.median(r[1] for r in runs):.2f} s"
        )
        return
    firsts, totals, missing = [], [], []
    for _ in range(args.runs):
        first, total = first_request(src)
        firsts.append(first)
        totals.append(total)
        missing.append(missing_key(src))
    med = statistics.median
    print(
        f"time to first request: median {med(firsts):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in firsts)})"
    )
    print(f"whole news run:        median {med(totals):.2f} s")
    print(
        f"missing-key error:     median {med(missing):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in missing)})"
    )


if __name__ == "__main__":
    main()
