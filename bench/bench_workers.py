"""Scale-out benchmarks (issue 13) on PostgreSQL. Prints numbers and the machine.

    python bench/bench_workers.py                 # everything (about 3 minutes)
    python bench/bench_workers.py model cpu       # some of: model cpu log failover

model     1, 2, 4 workers on 2,000 model tasks at offline latency 0.2 s,
          --concurrency 16 per worker: tasks/s and speedup over 1 worker.
cpu       1, 2, 4 workers on 2,000 function tasks that each burn 5 ms of CPU.
log       bench_core (b) (8 function agents x 2,000 artifacts, in one process)
          durable on PostgreSQL against SQLite.
failover  2 workers, --lease 3: SIGKILL one mid-run; the time from its death
          to its tasks being started again by the other.

The server is $FLOCK_ES_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test);
each measurement uses a database of its own, dropped afterwards. The run
duration is taken from the log (run.started to run.finished), so process start-up
is not counted; workers are started and connected before the run begins.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, median
from flock_es.log.backends import open_reader
from tests.pg import pg_database

ROOT = Path(__file__).resolve().parent.parent
FANOUT = ROOT / "tests" / "programs" / "fanout.py"
ADMIN = os.environ.get("FLOCK_ES_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CLI = [sys.executable, "-m", "flock_es.cli.app"]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOCK_ES_")}
    env.update(extra)
    return env


def _workers(url: str, n: int, env: dict[str, str], *args: str) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [*CLI, "worker", str(FANOUT), "--db", url, *args],
            env=_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(n)
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


def _throughput(n_workers: int, env: dict[str, str], concurrency: int) -> tuple[float, int]:
    with pg_database(ADMIN, "flock_es_bench") as url:
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
    else:
        env = {"FANOUT_N": "2000", "FANOUT_KIND": "cpu", "FANOUT_CPU_MS": "5"}
        what = "2,000 function tasks burning 5 ms CPU each"
        ideal = f"ideal 1 core: 10 s; this machine has {os.cpu_count()} cores"
    print(f"({kind}) {what} ({ideal}):")
    base = None
    for n in (1, 2, 4):
        secs, done = _throughput(n, env, 16)
        rate = done / secs
        base = base or rate
        print(
            f"    {n} worker{'s' if n > 1 else ' '}: {secs:6.2f} s  {rate:7.1f} tasks/s  "
            f"speedup {rate / base:.2f}x  ({done} tasks)"
        )


def bench_log(repeats: int = 3) -> None:
    from bench.bench_core import _throughput as core_b

    def rates(make_db: object) -> list[float]:
        out = []
        for r in range(repeats):
            if make_db == "sqlite":
                with tempfile.TemporaryDirectory() as d:
                    runs, wall = asyncio.run(core_b(8, 2000, Path(d) / f"b{r}.db"))
            else:
                with pg_database(ADMIN, "flock_es_bench") as url:
                    runs, wall = asyncio.run(core_b(8, 2000, url))  # type: ignore[arg-type]
            out.append(runs / wall)
        return out

    lite, pg = rates("sqlite"), rates("postgres")
    print(
        "(log) bench_core (b), 8 function agents x 2,000 artifacts, one process:\n"
        f"    SQLite:     median {median(lite):8,.0f} runs/s  (min {min(lite):,.0f}, n={repeats})\n"
        f"    PostgreSQL: median {median(pg):8,.0f} runs/s  (min {min(pg):,.0f}, n={repeats})"
    )


def bench_failover(lease: float = 3.0) -> None:
    env = {"FANOUT_N": "400", "FANOUT_KIND": "model", "FANOUT_LATENCY": "0.2"}
    with pg_database(ADMIN, "flock_es_bench") as url:
        subprocess.run([*CLI, "migrate", "--db", url], check=True, capture_output=True)
        args = ("--concurrency", "8", "--lease", str(lease))
        procs = _workers(url, 2, env, *args)
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
                    n = r.query("SELECT count(*) FROM events WHERE kind = 'task.completed'")
            except Exception:
                continue
            if int(str(n[0][0])) >= 100:
                victim.kill()
                killed_at = time.time()
        run.wait(timeout=600)
        _stop(procs[1:])
        with open_reader(url) as r:
            rows = r.query(
                "SELECT task_id, ts, body->>'worker', (body->>'attempt')::int FROM events"
                " WHERE kind = 'task.started' ORDER BY seq"
            )
    tag = f":{victim.pid}:"
    orphans = {t for t, _, w, _ in rows if tag in str(w)}
    retaken = [float(str(ts)) for t, ts, w, a in rows if t in orphans and int(str(a)) > 1]
    if not retaken:
        print("(failover) the victim held no unfinished task when it was killed; run again")
        return
    print(
        f"(failover) 2 workers, --lease {lease:g} s, SIGKILL one after 100 of 400 tasks:\n"
        f"    {len(retaken)} of its tasks taken over; first {min(retaken) - killed_at:.2f} s, "
        f"last {max(retaken) - killed_at:.2f} s after its death"
    )


if __name__ == "__main__":
    print(machine())
    print(f"server: {ADMIN.rsplit('@', 1)[-1]}  (shared machine: other processes may be running)")
    which = sys.argv[1:] or ["model", "cpu", "log", "failover"]
    for w in which:
        if w in ("model", "cpu"):
            bench_scale(w)
        elif w == "log":
            bench_log()
        else:
            bench_failover()
