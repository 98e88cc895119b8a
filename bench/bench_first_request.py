"""Start-up cost of the litellm path (issue 11): time to the first request, and to a missing-key error.

    python bench/bench_first_request.py                 # this checkout
    python bench/bench_first_request.py --src /work/main --runs 3

first request: ``flock-es run examples/news.py -m openai/test-model`` against
    the loopback server (in this process); seconds from spawning the CLI to the
    server receiving the first chat completion, and to the process exiting.
missing key: the same run without ``OPENAI_API_KEY``; seconds to the one-line error.

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


def first_request(src: Path) -> tuple[float, float]:
    server = OpenAIServer().start()
    arrivals: list[float] = []
    handle = server._handle

    def stamped(h: object) -> None:
        arrivals.append(time.perf_counter())
        handle(h)  # type: ignore[arg-type]

    server._handle = stamped  # type: ignore[method-assign]
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
    args = parser.parse_args()
    src = args.src.resolve()
    print(machine())
    print(f"source: {src}")
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
