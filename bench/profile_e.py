"""Instructions per model agent in workload (e), on the main thread (callgrind).

    python bench/profile_e.py                  # N model agents on one artifact, once
    python bench/profile_e.py --callgrind      # main-thread instructions per agent
    python bench/profile_e.py --callgrind --root /path/to/base   # the same of another checkout
    python bench/profile_e.py --callgrind --answers  # the answer phase only, every thread

Workload (e) as ``bench_core.py`` runs it (model agents on the offline model,
one publish, each agent publishes its answer), at a short latency so a run
under valgrind stays short. ``--callgrind`` runs this script twice under
``valgrind --tool=callgrind --separate-threads=yes`` (``--agents`` and
``--small`` agents) and prints the difference of the main thread's
instructions divided by the difference in agents: start-up, imports and the
warm-up cancel out. Instruction counts do not drift with the machine's load,
as wall times on a shared host do.

``--answers`` counts the answer phase only (callgrind's ``--instr-atstart=no``: the
run switches counting on a few seconds before its answers are due, at a latency
of 8 s, and off once idle), on every thread: the loop's part is what each answer
costs on the path to the last one (the calls start faster than their answers are
processed), and the writer's is what it takes from the loop's GIL meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: bench.*
from bench._checkout import use_checkout  # this checkout's bench package, before --root's

_ROOT = use_checkout()  # ``--root DIR``: the flock-es checked out at DIR (A/B runs)

from pydantic import BaseModel  # noqa: E402  (after the path is set)

from bench._callgrind import instructions, run_script  # noqa: E402
from flock_es import Flock  # noqa: E402


class Item(BaseModel):
    n: int


class Out(BaseModel):
    n: int


async def _publish(flock: Flock) -> float:
    t0 = time.perf_counter()
    await flock.publish(Item(n=1))
    await flock.run_until_idle()
    return time.perf_counter() - t0


def _fresh(agents: int, latency: float) -> float:
    """One run of ``agents`` model agents: seconds from the publish to idle.

    The publish-to-idle part runs inside ``functools.reduce`` (a C function of
    its own), so ``--run-only`` can count it alone (callgrind's
    ``--toggle-collect``): without it, the count also holds building the agents
    and opening the run, which grow with the agents too."""
    with tempfile.TemporaryDirectory() as d:
        flock = Flock(db=Path(d) / "e.db", model=f"offline?latency={latency}")
        for i in range(agents):
            flock.agent(f"m{i}").description("answers").consumes(Item).publishes(Out)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(flock.start())
            wall: float = functools.reduce(
                lambda _, __: loop.run_until_complete(_publish(flock)), [0.0, 0.0]
            )
            loop.run_until_complete(flock.close())
        finally:
            loop.close()
        return wall


def _counting(on: bool) -> None:
    """Switch callgrind's counting on or off in this process (``--answers``)."""
    what = "on" if on else "off"
    cmd = ["callgrind_control", "-i", what, str(os.getpid())]
    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _answers(agents: int, latency: float, count: bool = True) -> None:
    """One run of ``agents`` model agents, counted (``count``) from shortly before the
    answers are due until idle."""
    with tempfile.TemporaryDirectory() as d:
        flock = Flock(db=Path(d) / "e.db", model=f"offline?latency={latency}")
        for i in range(agents):
            flock.agent(f"m{i}").description("answers").consumes(Item).publishes(Out)

        async def run() -> None:
            await flock.start()
            if count:
                asyncio.get_running_loop().call_later(latency - 3.0, _counting, True)
            await flock.publish(Item(n=1))
            await flock.run_until_idle()
            if count:
                _counting(False)
                # Callgrind takes the command in only while the program runs code, not
                # while it sleeps: a sleep here left counting on into ``close``, whose
                # statements (5.3M instructions in SQLite's prepare, in the writer's
                # thread) were counted as the answers' (15% of the writer's count).
                end = time.monotonic() + 2.0
                while time.monotonic() < end:
                    pass
            await flock.close()

        asyncio.run(run())


def _thread_irs(out_prefix: str) -> dict[str, int]:
    """Instructions counted per thread (``NN`` of each ``-NN`` file), while counting was on."""
    out = {}
    for f in sorted(glob.glob(out_prefix + "*-[0-9][0-9]")):
        text = Path(f).read_text(errors="replace")
        m = re.search(r"^totals:\s+(\d+)", text, re.M)
        out[f.rsplit("-", 1)[1]] = int(m.group(1)) if m else 0
    return out


def _callgrind_answers(args: argparse.Namespace) -> int:
    counts = {}
    with tempfile.TemporaryDirectory() as d:
        for n in (args.small, args.agents):
            prefix = os.path.join(d, f"cg{n}")
            argv = [__file__, "--answers-run", "--agents", str(n)]
            if _ROOT:
                argv += ["--root", _ROOT]
            run_script(prefix, argv, instr_atstart=False)
            counts[n] = _thread_irs(prefix)
    for thread, ir in counts[args.agents].items():
        per = (ir - counts[args.small].get(thread, 0)) / (args.agents - args.small)
        if per:
            print(f"thread {thread}: {per:,.0f} instructions per agent (answer phase)")
    return 0


def _main_thread_ir(out_prefix: str) -> int:
    """Instructions of the main thread (callgrind's ``-01`` file of the process)."""
    files = sorted(glob.glob(out_prefix + "*-01"))
    if not files:
        raise SystemExit(f"no callgrind output at {out_prefix}*-01")
    return instructions(files[0])


def _callgrind(args: argparse.Namespace) -> int:
    counts = {}
    with tempfile.TemporaryDirectory() as d:
        for n in (args.small, args.agents):
            prefix = os.path.join(d, f"cg{n}")
            argv = [__file__, "--agents", str(n), "--latency", str(args.latency)]
            if _ROOT:
                argv += ["--root", _ROOT]
            run_script(prefix, argv, toggle="*functools_reduce*" if args.run_only else None)
            counts[n] = _main_thread_ir(prefix)
    per = (counts[args.agents] - counts[args.small]) / (args.agents - args.small)
    print(
        f"main thread: {counts[args.small]:,} ({args.small} agents), "
        f"{counts[args.agents]:,} ({args.agents} agents): {per:,.0f} instructions per agent"
        + (" (publish to idle only)" if args.run_only else "")
    )
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="profile_e.py")
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--small", type=int, default=50, help="the smaller run of --callgrind")
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument(
        "--run-only", action="store_true", help="count the publish to idle only (not the set-up)"
    )
    ap.add_argument("--root", help="the flock-es checkout to measure (default: this one)")
    ap.add_argument(
        "--answers", action="store_true", help="count the answer phase only, on every thread"
    )
    ap.add_argument("--answers-run", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.answers_run:  # the run ``--answers`` counts, under callgrind
        _answers(8, 0.05, count=False)  # warm-up: imports and first-call caches
        _answers(args.agents, 8.0)
        return 0
    if args.callgrind and args.answers:
        return _callgrind_answers(args)
    if args.callgrind:
        return _callgrind(args)
    _fresh(8, args.latency)  # warm-up: imports and first-call caches
    wall = _fresh(args.agents, args.latency)
    print(f"{args.agents} model agents, latency {args.latency} s: {wall:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
