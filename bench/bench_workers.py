"""Scale-out benchmarks (issue 13) on PostgreSQL and on one SQLite file.

    python bench/bench_workers.py                 # everything, both backends
    python bench/bench_workers.py model cpu       # some of: model cpu quick log failover
    BENCH_BACKENDS=sqlite BENCH_REPEATS=3 python bench/bench_workers.py cpu

Each measurement is repeated (BENCH_REPEATS, default 3), the repeats of all
worker counts and backends interleaved (the machine is shared: a burst of
other load hits them alike), and the median is reported with the 1-minute load
average seen around the measurements.

model     1, 2, 4 workers on 2,000 model tasks at offline latency 0.2 s,
          --concurrency 16 per worker: tasks/s and speedup over 1 worker.
cpu       1, 2, 4 workers on 2,000 function tasks that each burn 5 ms of CPU.
quick     1, 2, 4 workers on 8,000 function tasks that do nothing: the cost of
          claiming a task and committing its outcome on a shared log.
log       bench_core (b) (8 function agents x 2,000 artifacts, in one process)
          durable on PostgreSQL against SQLite.
failover  2 workers, --lease 3: SIGKILL one mid-run; the time from its death
          to its tasks being started again by the other. Twice: both workers on
          this machine (the survivor sees the victim's pid gone and takes over
          at once), and the victim made to look like another machine (its own
          UTS namespace and host name, via `unshare -u`, root only): its leases
          are waited out.

The server is $FLOCK_ES_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test);
each measurement uses a database (or SQLite file) of its own, dropped afterwards. The run
duration is taken from the log (run.started to run.finished), so process start-up
is not counted; workers are started and connected before the run begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import help_or_bad_args, machine, median
from flock_es.log.backends import open_reader
from tests.pg import pg_database

ROOT = Path(__file__).resolve().parent.parent
FANOUT = ROOT / "tests" / "programs" / "fanout.py"
ADMIN = os.environ.get("FLOCK_ES_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CLI = [sys.executable, "-m", "flock_es.cli.app"]
BACKENDS = os.environ.get("BENCH_BACKENDS", "sqlite,postgresql").split(",")
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
LOADS: list[float] = []  # 1-minute load averages seen at each measurement


@contextlib.contextmanager
def shared_db(backend: str) -> Iterator[str]:
    """A fresh log several processes share: a SQLite file, or a PostgreSQL database."""
    LOADS.append(os.getloadavg()[0])
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            yield str(Path(d) / "shared.db")
    else:
        with pg_database(ADMIN, "flock_es_bench") as url:
            yield url


def load_note() -> str:
    return f"load average (1 min) {min(LOADS):.1f}..{max(LOADS):.1f}, median {median(LOADS):.1f}"


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOCK_ES_")}
    env.update(extra)
    return env


# Runs the first worker under another host name (a machine of its own, as far as
# the others can tell): they cannot check its pid, so they wait its leases out.
ELSEWHERE = ["unshare", "-u", "sh", "-c", 'hostname bench-elsewhere && exec "$@"', "sh"]


def _workers(
    url: str, n: int, env: dict[str, str], *args: str, first: list[str] | None = None
) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [*((first or []) if i == 0 else []), *CLI, "worker", str(FANOUT), "--db", url, *args],
            env=_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for i in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()  # "worker ... serving ...": loaded and about to connect
    return procs


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=60)


def _run_seconds(url: str) -> tuple[float, int]:
    with open_reader(url) as r:
        run = r.resolve_run("latest")
        evs = r.events(run)
    start = next(e.ts for e in evs if e.kind.value == "run.started")
    end = next(e.ts for e in evs if e.kind.value == "run.finished")
    done = sum(1 for e in evs if e.kind.value == "task.completed")
    return end - start, done


def _throughput(
    backend: str, n_workers: int, env: dict[str, str], concurrency: int
) -> tuple[float, int]:
    with shared_db(backend) as url:
        subprocess.run([*CLI, "migrate", "--db", url], check=True, capture_output=True)
        procs = _workers(url, n_workers, env, "--concurrency", str(concurrency))
        time.sleep(1.0)  # let them connect and LISTEN
        try:
            out = subprocess.run(
                [*CLI, "run", str(FANOUT), "--db", url, "--no-execute", "-q"],
                env=_env(env),
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert out.returncode == 0, out.stderr
            return _run_seconds(url)
        finally:
            _stop(procs)


def bench_scale(kind: str) -> None:
    if kind == "model":
        env = {"FANOUT_N": "2000", "FANOUT_KIND": "model", "FANOUT_LATENCY": "0.2"}
        what = "2,000 model tasks at 0.2 s, --concurrency 16 per worker"
        ideal = "ideal 1 worker: 25 s"
    elif kind == "quick":
        env = {"FANOUT_N": "8000", "FANOUT_KIND": "cpu", "FANOUT_CPU_MS": "0"}
        what = "8,000 function tasks that do nothing (what coordinating a task costs)"
        ideal = "no ideal: each task is a claim and a commit of its outcome"
    else:
        env = {"FANOUT_N": "2000", "FANOUT_KIND": "cpu", "FANOUT_CPU_MS": "5"}
        what = "2,000 function tasks burning 5 ms CPU each"
        ideal = f"ideal 1 core: 10 s; this machine has {os.cpu_count()} cores"
    LOADS.clear()
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(REPEATS):
        for n in (1, 2, 4):
            for backend in BACKENDS:
                secs, done = _throughput(backend, n, env, 16)
                rates.setdefault((backend, n), []).append(done / secs)
    print(f"({kind}) {what} ({ideal}), median of {REPEATS} interleaved repeats:")
    for backend in BACKENDS:
        base = median(rates[(backend, 1)])
        for n in (1, 2, 4):
            got = rates[(backend, n)]
            print(
                f"    {backend:10} {n} worker{'s' if n > 1 else ' '}: {median(got):7.1f} tasks/s"
                f"  speedup {median(got) / base:.2f}x  (all: {', '.join(f'{r:.1f}' for r in got)})"
            )
    print(f"    {load_note()}")


def bench_log(repeats: int = REPEATS) -> None:
    from bench.bench_core import _throughput as core_b

    LOADS.clear()
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    for _ in range(repeats):
        for backend in rates:  # interleaved
            with shared_db(backend) as db:
                target: object = Path(db) if backend == "sqlite" else db
                runs, wall = asyncio.run(core_b(8, 2000, target))  # type: ignore[arg-type]
            rates[backend].append(runs / wall)
    lite, pg = rates["sqlite"], rates["postgresql"]
    print(
        "(log) bench_core (b), 8 function agents x 2,000 artifacts, one process:\n"
        f"    SQLite:     median {median(lite):8,.0f} runs/s  (min {min(lite):,.0f}, n={repeats})\n"
        f"    PostgreSQL: median {median(pg):8,.0f} runs/s  (min {min(pg):,.0f}, n={repeats})\n"
        f"    {load_note()}"
    )


def _failover_once(backend: str, lease: float, elsewhere: bool) -> float | None:
    """Seconds from a worker's SIGKILL to the first of its tasks started again."""
    env = {"FANOUT_N": "400", "FANOUT_KIND": "model", "FANOUT_LATENCY": "0.2"}
    with shared_db(backend) as url:
        subprocess.run([*CLI, "migrate", "--db", url], check=True, capture_output=True)
        args = ("--concurrency", "8", "--lease", str(lease))
        procs = _workers(url, 2, env, *args, first=ELSEWHERE if elsewhere else None)
        time.sleep(1.0)
        victim = procs[0]
        run = subprocess.Popen(
            [*CLI, "run", str(FANOUT), "--db", url, "--no-execute", "-q"],
            env=_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        killed_at = 0.0
        while run.poll() is None and not killed_at:
            time.sleep(0.1)
            try:
                with open_reader(url) as r:
                    n = sum(1 for e in r.events_after(0) if e.kind.value == "task.completed")
            except Exception:
                continue
            if n >= 100:
                victim.kill()
                killed_at = time.time()
        run.wait(timeout=600)
        _stop(procs[1:])
        with open_reader(url) as r:
            started = [e for e in r.events_after(0) if e.kind.value == "task.started"]
    tag = f":{victim.pid}:"
    orphans = {e.body["task_id"] for e in started if tag in str(e.body.get("worker"))}
    retaken = [e.ts for e in started if e.body["task_id"] in orphans and e.body["attempt"] > 1]
    return min(retaken) - killed_at if retaken else None


def bench_failover(lease: float = 3.0) -> None:
    LOADS.clear()
    where = ["this machine"]
    if shutil.which("unshare") and subprocess.run([*ELSEWHERE, "true"]).returncode == 0:
        where.append("another machine")
    times: dict[tuple[str, str], list[float]] = {(b, w): [] for b in BACKENDS for w in where}
    for _ in range(REPEATS):
        for backend, w in times:
            t = _failover_once(backend, lease, w != "this machine")
            if t is not None:
                times[(backend, w)].append(t)
    print(f"(failover) 2 workers, --lease {lease:g} s, SIGKILL one after 100 of 400 tasks:")
    for (backend, w), got in times.items():
        if got:
            print(
                f"    {backend:10} victim on {w:15}: first of its tasks taken over "
                f"{median(got):.2f} s after its death (median; all: "
                f"{', '.join(f'{t:.2f}' for t in got)})"
            )
    if len(where) == 1:
        print("    (another machine: skipped, `unshare -u` needs root)")
    print(f"    {load_note()}")


if __name__ == "__main__":
    help_or_bad_args(__doc__, {"model", "cpu", "quick", "log", "failover"})
    print(machine())
    print(f"server: {ADMIN.rsplit('@', 1)[-1]}  (shared machine: other processes may be running)")
    print(
        f"backends: {', '.join(BACKENDS)}; repeats: {REPEATS}; load average now {os.getloadavg()}"
    )
    which = sys.argv[1:] or ["model", "cpu", "quick", "log", "failover"]
    for w in which:
        if w in ("model", "cpu", "quick"):
            bench_scale(w)
        elif w == "log":
            bench_log()
        else:
            bench_failover()
