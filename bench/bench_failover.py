"""Workers riding out PostgreSQL failovers: what a lost connection costs in calls and time.

    python bench/bench_failover.py                       # 2 workers, 40 agents x 25 tickets, 2 cuts
    python bench/bench_failover.py --workers 3 --cuts 4 --every 5
    python bench/bench_failover.py --cuts 0              # the same run with no failover
    python bench/bench_failover.py --workers 0 --run-executes   # one run process rides them out

The realistic case of a shared run: ``flock-es worker`` processes execute the tasks
of ``tests/programs/swarm_program.py`` (``--agents`` model agents on each of
``--tickets`` tickets) against the loopback OpenAI-compatible provider (``python -m
tests.openai_server``: ``--latency`` s per answer, 429 beyond ``--max-inflight`` in
flight), and ``flock-es run --no-execute`` publishes the tickets. Every ``--every``
seconds the server ends every connection to the run's database
(``pg_terminate_backend``, as a failover does), ``--cuts`` times. The workers connect
again and go on; a ``run --no-execute`` that was waiting stops with one line, and is
resumed (``resume latest``), which rides later cuts out itself, as a run does with
``--run-executes`` (it executes tasks too; with ``--workers 0`` alone). ``resume``
takes part in the work like a worker, and its calls in flight at a cut are lost with
it: with ``--resume-at-end`` the workers alone do the tasks, and ``resume`` only
closes the run.

Printed: the machine, wall time to completion, tasks done and failed, completions the
provider served against the calls the log recorded (the difference is what the cuts
re-paid: answers in flight or not yet committed when a worker lost the database),
429s, and how often the workers said they lost and found the database.

The database is a fresh one on the server of ``--db`` (default ``$FLOCK_ES_TEST_PG``),
dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import machine  # noqa: E402
from bench.bench_ratelimit import start_server  # noqa: E402

PROGRAM = ROOT / "tests" / "programs" / "swarm_program.py"
CLI = [sys.executable, "-m", "flock_es.cli.app"]


def _admin(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def _fresh_database(url: str) -> str:
    name = f"flock_es_failover_{os.getpid()}"
    with _admin(url) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


def _cut(admin_url: str, db: str) -> int:
    with _admin(admin_url) as con:
        row = con.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (db.rsplit("/", 1)[1],),
        ).fetchone()
    return int(row[0]) if row else 0


def _latest(db: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([*CLI, "runs", "--db", db, "--json"], env=env, capture_output=True)
    runs = json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []
    return runs[-1] if runs else {}


def _until_done(db: str, env: dict[str, str], tasks: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(_latest(db, env).get("tasks", {}).get("done") or 0) >= tasks:
            return
        time.sleep(0.5)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen([*CLI, *args], env=env, stdout=f, stderr=f)


def _stops(p: subprocess.Popen[bytes], within: float = 15.0) -> bool:
    """Whether ``p`` ends with an error within ``within`` s of a cut (a ``run --no-execute``
    that lost its database does, within the pool's 10 s wait; one that rides the cut out
    goes on)."""
    try:
        return p.wait(timeout=within) != 0
    except subprocess.TimeoutExpired:
        return False


def run(args: argparse.Namespace, admin_url: str, tmp: Path) -> None:
    server, port = start_server(args.latency, args.max_inflight, "0.2")
    db = _fresh_database(admin_url)
    model = "openai/test-model"
    env = {
        **os.environ,
        "OPENAI_API_BASE": f"http://127.0.0.1:{port}/v1",
        "OPENAI_API_KEY": "sk-loopback-not-a-key",
        "SWARM_N": str(args.agents),
        "SWARM_TICKETS": str(args.tickets),
        "PYTHONPATH": str(ROOT),
    }
    common = ["--db", db, "-m", model]
    workers = [
        _start(["worker", str(PROGRAM), *common], env, tmp / f"worker{i}.log")
        for i in range(args.workers)
    ]
    t0 = time.monotonic()
    alone = [] if args.run_executes else ["--no-execute"]
    waiting = _start(["run", str(PROGRAM), *common, *alone, "-q"], env, tmp / "run.log")
    stopped = resumed = 0
    try:
        for _ in range(args.cuts):
            time.sleep(args.every)
            _cut(admin_url, db)
            if not _stops(waiting):  # it rides the cut out (it executes, or it resumes)
                continue
            stopped += 1
            if not args.resume_at_end and _latest(db, env).get("status") != "completed":
                resumed += 1
                waiting = _start(["resume", "latest", "--db", db, "-q"], env, tmp / "run.log")
        if args.resume_at_end:  # the workers alone execute; then resume closes the run
            waiting.wait(timeout=args.timeout)
            _until_done(db, env, args.agents * args.tickets, args.timeout)
            if _latest(db, env).get("status") != "completed":
                resumed += 1
                waiting = _start(["resume", "latest", "--db", db, "-q"], env, tmp / "run.log")
        code = waiting.wait(timeout=args.timeout)
        wall = time.monotonic() - t0
    finally:
        for p in [*workers, waiting]:
            p.terminate()
        for p in workers:
            p.wait(timeout=60)
        server.send_signal(2)
        served_line = server.communicate(timeout=30)[0].strip().splitlines()[-1]
    report(args, db, env, tmp, wall, code, stopped, resumed, served_line)
    with _admin(admin_url) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{db.rsplit("/", 1)[1]}" WITH (FORCE)')


def report(
    args: argparse.Namespace,
    db: str,
    env: dict[str, str],
    tmp: Path,
    wall: float,
    code: int,
    stopped: int,
    resumed: int,
    served_line: str,
) -> None:
    r = _latest(db, env)
    tasks = r.get("tasks", {})
    calls = int(r.get("model_calls") or 0)
    served = int(served_line.split()[1])  # "served N completions, rejected M with 429, ..."
    logs = "".join(p.read_text(errors="replace") for p in sorted(tmp.glob("worker*.log")))
    runs = (tmp / "run.log").read_text(errors="replace")
    print(
        f"{args.workers} workers, {args.agents} agents x {args.tickets} tickets, "
        f"{args.cuts} cuts every {args.every:g} s; provider {args.latency:g} s a call, "
        f"429 beyond {args.max_inflight} in flight"
    )
    print(
        f"status {r.get('status')} (last exit {code}) in {wall:.1f} s: "
        f"{tasks.get('done')} done, {tasks.get('failed')} failed; "
        f"a run or resume stopped {stopped}x, resumed {resumed}x"
    )
    print(
        f"provider: {served_line}; the log recorded {calls} calls: "
        f"{served - calls} re-paid by the cuts"
    )
    print(
        f"workers: lost the database {logs.count('lost the database')}x, "
        f"connected again {logs.count('connected again')}x, tracebacks {logs.count('Traceback')}"
    )
    print(
        f"run and resume: lost the database {runs.count('lost the database')}x, "
        f"connected again {runs.count('connected again')}x, tracebacks {runs.count('Traceback')}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="bench_failover.py", description=(__doc__ or "").split("\n", 1)[0]
    )
    ap.add_argument("--db", default=os.environ.get("FLOCK_ES_TEST_PG"), help="a server's URL")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--agents", type=int, default=40)
    ap.add_argument("--tickets", type=int, default=25)
    ap.add_argument("--cuts", type=int, default=2)
    ap.add_argument("--every", type=float, default=8.0, help="seconds between cuts")
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--max-inflight", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument(
        "--run-executes",
        action="store_true",
        help="the run executes tasks too (no --no-execute) and rides the cuts out itself; "
        "with --workers 0 it is the only process",
    )
    ap.add_argument(
        "--resume-at-end",
        action="store_true",
        help="resume a stopped run only once the workers did every task (their cost alone)",
    )
    args = ap.parse_args()
    if not args.db or not args.db.startswith(("postgresql://", "postgres://")):
        ap.error("a PostgreSQL server is needed: --db URL or $FLOCK_ES_TEST_PG")
    print(machine())
    with tempfile.TemporaryDirectory() as d:
        run(args, args.db, Path(d))


if __name__ == "__main__":
    main()
