"""Benchmarks of the litellm path (issue 5), against a loopback OpenAI-compatible server.

    python bench/bench_litellm.py            # both
    python bench/bench_litellm.py overhead   # one of them
    python bench/bench_litellm.py fanout --agents 200 --latency 1

overhead: sequential calls to a server answering at once. Per call, median of
    raw ``litellm.acompletion``, our ``LiteLLMClient.complete`` (the adapter:
    request building, error mapping, cost), and a whole model-agent run through
    a durable Flock (prompt, call with retry wrapper, validation, events
    committed to SQLite). Overhead = agent run - raw call.
fanout: N model agents consume one artifact; the server answers each call
    after L seconds. Wall time from publish to idle (ideal: L).

The server is a separate process (``python -m tests.openai_server``), so its
threads do not compete with the measured event loop for the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import machine, median  # noqa: E402
from flock_es import Flock  # noqa: E402
from flock_es.models.base import ModelRequest  # noqa: E402
from flock_es.models.litellm_client import LiteLLMClient, import_litellm  # noqa: E402
from flock_es.models.prompt import build_messages, output_schema  # noqa: E402
from flock_es.models.retry import RetryPolicy  # noqa: E402

KEY = "sk-bench-0123456789"
MODEL = "openai/test-model"


class Story(BaseModel):
    text: str


class Note(BaseModel):
    summary: str = Field(max_length=200)
    score: int = Field(ge=0, le=10)


@contextmanager
def server(latency: float) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().split()[1]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _raw(url: str, n: int) -> list[float]:
    litellm = import_litellm()
    schema = output_schema([Note])
    msgs = build_messages("bench", "", [{"type": "Story", "payload": {"text": "x"}}], schema)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await litellm.acompletion(
            model=MODEL, messages=msgs, api_base=url, api_key=KEY, max_retries=0
        )
        out.append(time.perf_counter() - t0)
    return out


async def _adapter(url: str, n: int) -> list[float]:
    client = LiteLLMClient(MODEL, api_base=url, api_key=KEY)
    schema = output_schema([Note])
    payloads = [{"type": "Story", "payload": {"text": "x"}}]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        req = ModelRequest(
            model=MODEL,
            agent="bench",
            inputs=payloads,
            output_schema=schema,
            messages=build_messages("bench", "", payloads, schema),
        )
        await client.complete(req)
        out.append(time.perf_counter() - t0)
    return out


async def _agent_runs(url: str, n: int, db: Path) -> list[float]:
    flock = Flock(MODEL, db=db, retry=RetryPolicy(base_delay=0.01))
    flock.agent("bench").consumes(Story).publishes(Note).model(MODEL, api_base=url, api_key=KEY)
    flock.check_models()
    await flock.start()
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await flock.publish(Story(text=f"story {i}"))
        await flock.run_until_idle()
        out.append(time.perf_counter() - t0)
    await flock.close()
    return out


def bench_overhead(n: int = 200) -> None:
    print(f"\n[overhead] {n} sequential calls each, loopback server answering at once")
    with server(0.0) as url, tempfile.TemporaryDirectory() as tmp:
        LiteLLMClient(MODEL, api_key=KEY).check()  # import + warm-up, outside the timings

        async def interleaved() -> tuple[list[float], list[float], list[float]]:
            # Rounds alternate, so that drift (warm-up, the server, the machine)
            # hits the three the same.
            raw: list[float] = []
            adapter: list[float] = []
            agent: list[float] = []
            await _raw(url, 50)
            for r in range(10):
                raw += await _raw(url, n // 10)
                adapter += await _adapter(url, n // 10)
                agent += await _agent_runs(url, n // 10, Path(tmp) / f"o{r}.db")
            return raw, adapter, agent

        raws, adapters, agents = asyncio.run(interleaved())
        raw, adapter, agent = median(raws), median(adapters), median(agents)
    print(f"  raw litellm.acompletion     median {raw * 1000:7.2f} ms")
    print(
        f"  LiteLLMClient.complete      median {adapter * 1000:7.2f} ms  "
        f"(+{(adapter - raw) * 1000:.2f} ms, {adapter / raw:.2f}x)"
    )
    print(
        f"  model-agent run, durable    median {agent * 1000:7.2f} ms  "
        f"(+{(agent - raw) * 1000:.2f} ms, {agent / raw:.2f}x)"
    )


async def _fanout(url: str, agents: int, db: Path) -> tuple[float, int]:
    flock = Flock(MODEL, db=db, retry=RetryPolicy(timeout=60))
    for i in range(agents):
        flock.agent(f"a{i}").consumes(Story).publishes(Note).model(MODEL, api_base=url, api_key=KEY)
    flock.check_models()
    await flock.start()
    t0 = time.perf_counter()
    await flock.publish(Story(text="one story for everyone"))
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    done = flock.state.tasks_by_status()["completed"]
    await flock.close()
    return wall, done


async def _raw_fanout(url: str, calls: int) -> float:
    litellm = import_litellm()
    schema = output_schema([Note])
    msgs = build_messages("bench", "", [{"type": "Story", "payload": {"text": "x"}}], schema)
    t0 = time.perf_counter()
    await asyncio.gather(
        *[
            litellm.acompletion(
                model=MODEL, messages=msgs, api_base=url, api_key=KEY, max_retries=0
            )
            for _ in range(calls)
        ]
    )
    return time.perf_counter() - t0


def bench_fanout(agents: int = 200, latency: float = 1.0, repeats: int = 3) -> None:
    print(f"\n[fanout] {agents} model agents, one artifact, server latency {latency:g} s")
    walls, raws = [], []
    with server(latency) as url, tempfile.TemporaryDirectory() as tmp:
        LiteLLMClient(MODEL, api_key=KEY).check()
        for r in range(repeats):
            wall, done = asyncio.run(_fanout(url, agents, Path(tmp) / f"f{r}.db"))
            walls.append(wall)
            raws.append(asyncio.run(_raw_fanout(url, agents)))
            print(
                f"  run {r + 1}: {done}/{agents} agents completed in {wall:.2f} s; "
                f"{agents} raw concurrent litellm.acompletion calls: {raws[-1]:.2f} s"
            )
    m, raw = median(walls), median(raws)
    print(
        f"  median wall {m:.2f} s (ideal {latency:g} s; one after another {agents * latency:g} s)"
        f"; raw litellm gather of the same calls {raw:.2f} s; ratio {m / raw:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "which", nargs="?", default="all", choices=["all", "overhead", "fanout"], help="what to run"
    )
    parser.add_argument("--calls", type=int, default=200, help="calls (default: 200)")
    parser.add_argument("--agents", type=int, default=200, help="agents (default: 200)")
    parser.add_argument(
        "--latency", type=float, default=1.0, help="the server's seconds per answer (default: 1)"
    )
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", KEY)
    print(machine())
    print(f"litellm {importlib.metadata.version('litellm')}")
    if args.which in ("all", "overhead"):
        bench_overhead(args.calls)
    if args.which in ("all", "fanout"):
        bench_fanout(args.agents, args.latency)


if __name__ == "__main__":
    main()
