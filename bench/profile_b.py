"""Profile workload (b) in this process: where a run's CPU goes, per thread.

    python bench/profile_b.py                       # def agents, runs/s and CPU per thread
    python bench/profile_b.py --kind async --items 2000
    python bench/profile_b.py --yappi 25            # top 25 functions by self time, per thread
    python bench/profile_b.py --callgrind           # instructions per run, main and writer
    python bench/profile_b.py --txns                # how much of the run the writer spends committing

Workload (b) as ``bench_core.py`` runs it (8 agents, one output each, durable on
SQLite in the default durability mode). Without ``--yappi`` it prints the rate
and the CPU seconds of the main thread and of the writer thread (from
``/proc/self/task``), so the two sides of a run can be compared A/B without a
profiler's overhead. ``--yappi N`` (``pip install yappi``) profiles every thread
in CPU time and prints each thread's top ``N`` functions by self time.
``--callgrind`` runs this script twice under ``valgrind --tool=callgrind
--separate-threads=yes`` (``--small`` and ``--items`` artifacts) and prints the
instructions per agent run of the main thread and of the writer thread: the
difference of the two runs, divided by the difference in runs, so start-up,
imports and the warm-up cancel out. Instruction counts do not drift with the
machine's load, as wall and CPU times on a shared host do. It also splits them by
the GIL: the two threads share it, and only the writer's work inside SQLite's
step and prepare (which CPython runs without it) goes on beside the loop's; when
the instructions under the GIL come close to the wall time per run, the run is
bound by the GIL, not by SQLite or either thread alone. ``--txns`` times the
writer's transactions (``LogWriter._transaction``, in whichever thread runs it)
and prints the share of the run's wall time spent inside one, with their number
and mean size: near all of it says the writer is the stage the run waits for.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: bench.*
from bench._checkout import use_checkout  # this checkout's bench package, before --root's

_ROOT = use_checkout()  # ``--root DIR``: the flock-es checked out at DIR (A/B runs)

from pydantic import BaseModel  # noqa: E402  (after the path is set)

from bench._callgrind import inclusive, instructions, run_script  # noqa: E402
from flock_es import Flock  # noqa: E402


class Item(BaseModel):
    n: int


class Out(BaseModel):
    n: int


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by name."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), f"tid{tid}")
        name = "writer" if name.startswith("flock-es-writer") else name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


_TXNS: list[tuple[float, float, int]] = []  # (start, end, events) of each commit, ``--txns``
_T0 = [0.0]  # when the measured run's publish started


def _time_transactions() -> None:
    """Record each commit's start, end and size in ``_TXNS`` (``--txns``)."""
    from flock_es.log import writer

    real = writer.LogWriter._transaction

    def timed(self: Any, conn: Any, events: list[Any], wait: bool) -> bool:
        start = time.perf_counter()
        try:
            return real(self, conn, events, wait)
        finally:
            _TXNS.append((start, time.perf_counter(), len(events)))

    writer.LogWriter._transaction = timed  # type: ignore[method-assign]


def _txn_share(wall: float) -> str:
    """The writer's commits during the measured run (not its close): their share of it."""
    end = _T0[0] + wall
    inside = [(s, e, n) for s, e, n in _TXNS if _T0[0] <= s <= end]
    if not inside:
        return "no commits"
    busy = sum(min(e, end) - s for s, e, _ in inside)
    mean = sum(n for _, _, n in inside) / len(inside)
    return (
        f"writer in a commit {busy * 1e3:.0f} of {wall * 1e3:.0f} ms ({busy / wall:.0%}): "
        f"{len(inside)} commits of {mean:,.0f} events on average"
    )


async def _run(db: Path, kind: str, agents: int, items: int) -> tuple[float, dict[str, float]]:
    flock = Flock(db=db)

    def fn(x: Item) -> Out:
        return Out(n=x.n)

    async def afn(x: Item) -> Out:
        return Out(n=x.n)

    for i in range(agents):
        flock.agent(f"f{i}").consumes(Item).publishes(Out).with_function(
            fn if kind == "def" else afn
        )
    await flock.start()
    before = _thread_cpu()
    _TXNS.clear()
    t0 = _T0[0] = time.perf_counter()
    await flock.publish_many([Item(n=i) for i in range(items)])
    await flock.run_until_idle()
    wall = time.perf_counter() - t0
    after = _thread_cpu()
    await flock.close()
    cpu = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return wall, cpu


def _fresh(kind: str, agents: int, items: int) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory() as d:
        return asyncio.run(_run(Path(d) / "b.db", kind, agents, items))


def _yappi_report(top: int) -> None:
    import yappi

    names = {t.id: t.name for t in yappi.get_thread_stats()}
    for tid, tname in names.items():
        stats: Any = yappi.get_func_stats(filter={"ctx_id": tid})
        stats.sort("tsub", "desc")
        total = sum(s.tsub for s in stats)
        if total < 0.05:
            continue
        print(f"\n== thread {tname} ({tid}): {total:.2f} s self time in Python functions")
        for s in list(stats)[:top]:
            where = f"{Path(s.module).name}:{s.lineno}"
            print(f"{s.tsub:7.3f}s {s.ncall:9d}  {s.name}  ({where})")


def _threads(prefix: str) -> tuple[int, int, int]:
    """Instructions of the main thread and of the run's writer (the busiest other
    thread: the warm-up's writer commits fewer artifacts) of one callgrind run, and
    the writer's in SQLite's step and prepare (run without the GIL)."""
    files = sorted(glob.glob(prefix + "*-[0-9][0-9]"))
    main = [f for f in files if f.endswith("-01")]
    others = [(instructions(f), f) for f in files if not f.endswith("-01")]
    if not main or not others:
        raise SystemExit(f"no callgrind output per thread at {prefix}")
    writer_ir, writer = max(others)
    free = sum(inclusive(writer, s) for s in ("sqlite3_step", "sqlite3_prepare_v2"))
    return instructions(main[0]), writer_ir, free


def _callgrind(args: argparse.Namespace) -> int:
    counts = {}
    with tempfile.TemporaryDirectory() as d:
        for items in (args.small, args.items):
            prefix = os.path.join(d, f"cg{items}")
            argv = [
                __file__,
                *(["--root", args.root] if args.root else []),
                *("--kind", args.kind, "--agents", str(args.agents)),
                *("--items", str(items), "--repeats", "1"),
            ]
            # The run's snapshot jobs import the same checkout (as bench/ab_b.py runs it).
            env = {**os.environ, "PYTHONPATH": args.root} if args.root else None
            run_script(prefix, argv, env=env, cwd=args.root)
            counts[items] = _threads(prefix)
    runs = args.agents * (args.items - args.small)
    main_ir, writer_ir, free_ir = (
        (big - small) / runs
        for big, small in zip(counts[args.items], counts[args.small], strict=True)
    )
    print(
        f"{args.kind}: instructions per agent run ({args.items} minus {args.small} artifacts): "
        f"main {main_ir:,.0f}  writer {writer_ir:,.0f}  total {main_ir + writer_ir:,.0f}"
    )
    # The two threads share one GIL: only SQLite's own work runs beside the loop's.
    held = main_ir + writer_ir - free_ir
    print(
        f"    under the GIL: {held:,.0f} (main, and the writer's {writer_ir - free_ir:,.0f} "
        f"outside SQLite); without it: the writer's {free_ir:,.0f} in SQLite "
        f"({free_ir / writer_ir:.0%} of its instructions)"
    )
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="profile_b.py")
    ap.add_argument("--kind", choices=("def", "async"), default="def")
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--items", type=int, default=2000, help="(1,250 with --callgrind)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--yappi", type=int, default=0, metavar="TOP")
    ap.add_argument("--root", help="the flock-es checkout to measure (default: this one)")
    ap.add_argument("--callgrind", action="store_true", help="instructions per run (valgrind)")
    ap.add_argument("--txns", action="store_true", help="the writer's commits: share of the run")
    ap.add_argument("--small", type=int, default=250, help="the smaller run of --callgrind")
    args = ap.parse_args(argv)
    if args.callgrind:
        if args.items == ap.get_default("items"):
            args.items = 1250  # two runs under valgrind: a minute or two
        return _callgrind(args)
    if args.txns:
        _time_transactions()
    _fresh(args.kind, args.agents, 100)  # warm-up: imports and first-call caches
    runs = args.agents * args.items
    if args.yappi:
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start(builtins=True)
        wall, _ = _fresh(args.kind, args.agents, args.items)
        yappi.stop()
        print(f"{args.kind}: {runs / wall:,.0f} runs/s under yappi")
        _yappi_report(args.yappi)
        return 0
    for _ in range(args.repeats):
        wall, cpu = _fresh(args.kind, args.agents, args.items)
        per = "  ".join(f"{k} {v / runs * 1e6:.1f}" for k, v in sorted(cpu.items()) if v)
        print(f"{args.kind}: {runs / wall:8,.0f} runs/s   CPU µs/run: {per}")
        if args.txns:
            print(f"    {_txn_share(wall)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
