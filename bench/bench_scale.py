"""Workload (b) at growing sizes: is flock-es flat at scale?

    python bench/bench_scale.py                     # 2,000, 20,000 and 100,000 artifacts
    python bench/bench_scale.py --sizes 2000,5000   # quicker
    python bench/bench_scale.py --feed generator    # the program holds no list of N objects

For each size (8 ``def`` agents, one output each, so 8 agent runs per artifact;
program: bench/_scale_program.py), in fresh processes:

run      the program itself: agent runs per second (to idle, and in brackets to its
         log closed: a run whose WAL never reached a background checkpoint, as at
         2,000 artifacts, copies all of it into the database at its close, which
         larger runs did as they went), CPU per run (in all, then the
         event loop's thread and the SQLite writer's: their sum close to the wall
         time per run says they took turns), the CPU seconds of its checkpoint
         jobs (after the dot: work beside the run, on the cores its threads need;
         ``bench_jobcost.py`` measures what it costs the run), peak RSS, and
         database bytes per run
         (database plus WAL after close); sizes up to 20,000 artifacts are run three
         times and the median (by wall time) is reported;
resume   a second run of the same size is SIGKILLed about halfway (once half of
         its events are in the log), then ``flock-es resume`` finishes it:
         wall time, CPU seconds and peak RSS of the resume process;
flat     each later size's run is bracketed by runs of the first (smallest) size, two
         just before it and two just after (fresh files, not replayed): its
         runs/s over their median is the ratio printed last, beside its ratio to
         the first size's row. On a shared host the same short run varies by a
         third from one minute to the next; runs made around the large one share
         its minutes, so the host's drift moves that ratio less than the rows' one;
         then the same ratios to each run's log closed;
show     ``flock-es show RUN --at LAST`` of the complete run (the state at its last
         event, folded from the latest snapshot the run checkpointed): wall and CPU;
replay   ``flock-es replay`` of the complete run: wall time, CPU seconds (next to
         the run's own, the load-robust comparison) and peak RSS; after the table,
         each size's replay wall time over its run's (issue 14: under 1). The
         replay's includes the CLI's start (a few tenths of a second), the run's
         only its publish to idle: a small size's ratio is above 1 for that alone.

A run or resume starts checkpoint jobs (``runtime/checkpoints.py``, another
process that folds the log into a snapshot) once ``FIRST_CHECKPOINT`` (100,000)
of its events lie past the latest snapshot: the 2,000-artifact run (52,000
events) starts none, the larger ones do. Their peak is a column of its own,
the highest VmHWM of the run's (or resume's) ``snapshot_job`` children, read from
/proc while they run (found within 0.2 s, sampled every 20 ms). ``wait4``'s
peak of a process's children is no measure of them: a child started with vfork
(Python's subprocess) is charged its parent's peak at its exec. The run's own
peak is its ``getrusage``; resume's, its VmHWM read while it runs; replay's,
``wait4``'s (it starts no jobs). The databases live in a temporary directory on
the default temp disk.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import add_sizes, child_usage, hwm_mb, machine

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "bench" / "_scale_program.py"
AGENTS = 8


FEED = ["list"]
"""How the program hands its artifacts to ``publish_many`` (``--feed``)."""


def _env(n: int, **more: str) -> dict[str, str]:
    env = dict(
        os.environ, FLOCK_ES_BENCH_N=str(n), FLOCK_ES_BENCH_FEED=FEED[0], PYTHONPATH=str(ROOT)
    )
    env.update(more)  # the caller's settings win (a feed of its own, say)
    return env


def _own_peak_mb(proc: subprocess.Popen[str], peak: list[float]) -> None:
    """Keep ``peak[0]`` at the process's own peak RSS (VmHWM) while it runs."""
    while proc.returncode is None:
        mb = hwm_mb(proc.pid)
        if mb is None:
            return  # gone (or not Linux)
        peak[0] = max(peak[0], mb)
        time.sleep(0.02)


def _jobs_peak_mb(parent: subprocess.Popen[str], peak: list[float]) -> None:
    """Keep ``peak[0]`` at the highest VmHWM of ``parent``'s checkpoint jobs while it runs."""
    jobs: set[int] = set()
    tick = 0
    while _running(parent.pid):
        if tick % 10 == 0:  # a job lives 0.2 s or more (its imports alone): found in time
            jobs.update(_children(parent.pid, b"flock_es.log.snapshot_job"))
        tick += 1
        for pid in list(jobs):
            mb = hwm_mb(pid)
            if mb is None:
                jobs.discard(pid)  # gone
            else:
                peak[0] = max(peak[0], mb)
        time.sleep(0.02)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs, without reaping it: ``Popen.poll`` would, and the
    main thread's ``child_usage`` (``os.wait4``, for the child's rusage) then found no
    child (ChildProcessError; seen once at 20,000 artifacts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def _children(ppid: int, marker: bytes) -> list[int]:
    """The pids of ``ppid``'s children whose command line holds ``marker``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            if int(stat[stat.rindex(b")") + 2 :].split()[1]) != ppid:
                continue
            if marker in Path(f"/proc/{entry}/cmdline").read_bytes():
                out.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _watched(proc: subprocess.Popen[str], target: Any, peak: list[float]) -> threading.Thread:
    watch = threading.Thread(target=target, args=(proc, peak), daemon=True)
    watch.start()
    return watch


def _cli(
    args: list[str], n: int, own: list[float] | None = None, jobs: list[float] | None = None
) -> tuple[float, float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flock_es.cli.app", *args],
        env=_env(n),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watches = []
    if own is not None:
        watches.append(_watched(proc, _own_peak_mb, own))
    if jobs is not None:
        watches.append(_watched(proc, _jobs_peak_mb, jobs))
    out, err = proc.stdout, proc.stderr
    assert out is not None and err is not None
    text = out.read()
    errors = err.read()
    code, rss, cpu = child_usage(proc)
    for watch in watches:
        watch.join()
    wall = time.perf_counter() - t0
    if code not in (0,):
        raise SystemExit(f"flock-es {' '.join(args)} exited {code}: {errors[-1500:]}")
    return wall, rss, cpu, text


def run_program(db: Path, n: int, **env: str) -> dict[str, float]:
    """One run of ``bench/_scale_program.py`` with ``n`` artifacts on ``db`` in a fresh
    process: its JSON line, with its checkpoint jobs' peak RSS. ``env``: more of its
    environment (``FLOCK_ES_BENCH_FEED``, ``FLOCK_ES_BENCH_CHECKPOINTS``)."""
    proc = subprocess.Popen(
        [sys.executable, str(PROGRAM), str(db)],
        env=_env(n, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    jobs = [0.0]
    watch = _watched(proc, _jobs_peak_mb, jobs)
    out, err = proc.communicate()
    watch.join()
    if proc.returncode != 0:
        raise SystemExit(f"the run of {n:,} artifacts exited {proc.returncode}: {err[-1500:]}")
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["jobs_rss_mb"] = jobs[0]  # not the program's RUSAGE_CHILDREN (see the docstring)
    return result


def _events(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _killed_halfway(db: Path, n: int, full_events: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(PROGRAM), str(db)],
        env=_env(n),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while proc.poll() is None and _events(db) < full_events // 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _size(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


SHORT_RUNS = 20_000 * AGENTS
"""Sizes up to this many agent runs (some 15 s) are run three times, each in a fresh
file, and the run of median wall time is the one reported (and replayed): one run
of a second is at the mercy of the host's moment, and flat-at-scale compares it."""


def db_files(db: Path) -> list[Path]:
    """The database and its -wal and -shm files, those that exist."""
    return list(db.parent.glob(db.name + "*"))


def _median_run(db: Path, n: int) -> dict[str, float]:
    if AGENTS * n > SHORT_RUNS:
        return run_program(db, n)
    tries = [db.with_name(f"{db.stem}-{i}.db") for i in range(3)]
    results = sorted(((run_program(f, n), f) for f in tries), key=lambda t: t[0]["wall"])
    (_, fast), (median, kept), (_, slow) = results
    for f in db_files(fast) + db_files(slow):
        f.unlink()
    for f in db_files(kept):
        f.rename(db.with_name(db.name + f.name[len(kept.name) :]))
    return median


BRACKET = 2
"""Runs of the first size made just before, and as many just after, each later one."""


def _reference(tmp: Path, n: int, tag: str) -> list[tuple[float, float]]:
    """Runs/s of ``BRACKET`` fresh runs of ``n`` artifacts (the bracket of a larger run):
    to idle, and to the log closed."""
    out = []
    for i in range(BRACKET):
        db = tmp / f"ref-{tag}-{i}.db"
        r = run_program(db, n)
        out.append((AGENTS * n / r["wall"], AGENTS * n / r["closed_wall"]))
        for f in db_files(db):
            f.unlink()
    return out


def one_size(n: int, tmp: Path, reference: int | None = None) -> dict[str, float]:
    runs = AGENTS * n
    db = tmp / f"run-{n}.db"
    bracket = _reference(tmp, reference, "before") if reference else []
    r = _median_run(db, n)
    if reference:
        bracket += _reference(tmp, reference, "after")
    full_events = _events(db)
    row: dict[str, float] = {
        "artifacts": n,
        "runs": runs,
        "events": full_events,
        "run_s": r["wall"],
        "runs_per_s": runs / r["wall"],
        "closed_runs_per_s": runs / r["closed_wall"],
        "cpu_us_per_run": r["cpu"] / runs * 1e6,
        "main_us_per_run": r.get("main_cpu", 0.0) / runs * 1e6,
        "writer_us_per_run": r.get("writer_cpu", 0.0) / runs * 1e6,
        "run_rss_mb": r["rss_mb"],
        "jobs_rss_mb": r.get("jobs_rss_mb", 0.0),
        "jobs_cpu_s": r.get("jobs_cpu", 0.0),
        "db_bytes_per_run": _size(db) / runs,
        "bracket_runs_per_s": statistics.median(b[0] for b in bracket) if bracket else 0.0,
        "bracket_closed_runs_per_s": statistics.median(b[1] for b in bracket) if bracket else 0.0,
    }
    wall, _, cpu, _ = _cli(["show", "latest", "--db", str(db), "--at", str(full_events)], n)
    row.update(show_at_s=wall, show_at_cpu_s=cpu)
    wall, rss, cpu, _ = _cli(["replay", "latest", "--db", str(db), "--no-timeline"], n)
    row.update(run_cpu_s=r["cpu"], replay_s=wall, replay_cpu_s=cpu, replay_rss_mb=rss)
    killed = tmp / f"killed-{n}.db"
    _killed_halfway(killed, n, full_events)
    at = _events(killed)
    own, jobs = [0.0], [0.0]
    wall, _, cpu, _ = _cli(["resume", "latest", "--db", str(killed), "-q"], n, own, jobs)
    row.update(killed_at_events=at, resume_s=wall, resume_cpu_s=cpu, resume_rss_mb=jobs[0])
    row.update(resume_own_rss_mb=own[0])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    add_sizes(ap)
    ap.add_argument(
        "--feed",
        choices=("list", "generator"),
        default="list",
        help="publish_many of a list of N objects (workload (b); the program's list is in "
        "the run's RSS) or of a generator (the run's RSS is flock-es's own)",
    )
    args = ap.parse_args()
    FEED[0] = args.feed
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(machine())
    print(f"publish_many of a {args.feed} of N objects")
    print(
        "| Artifacts (agent runs) | events | runs/s (closed) | CPU µs/run (main; writer) · jobs' "
        "CPU-s | run RSS (its jobs) "
        "| db bytes/run | show --at end (CPU) | replay (CPU; run CPU) | replay RSS "
        "| resume (CPU) (killed at) | resume RSS own (its jobs) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    flat: list[str] = []
    closed: list[str] = []
    replays: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        for i, n in enumerate(sizes):
            first = i == 0
            r = one_size(n, Path(d), None if first else sizes[0])
            replays.append(
                f"{n:,}: {r['replay_s']:.1f} s over {r['run_s']:.1f} s = "
                f"{r['replay_s'] / r['run_s']:.2f}"
            )
            if first:
                base = r
            else:
                flat.append(_flat(n, sizes[0], r, base, ""))
                closed.append(_flat(n, sizes[0], r, base, "closed_"))
            print(
                f"| {n:,} ({r['runs']:,}) | {r['events']:,} | {r['runs_per_s']:,.0f} "
                f"({r['closed_runs_per_s']:,.0f}) "
                f"| {r['cpu_us_per_run']:.1f} "
                f"({r['main_us_per_run']:.1f}; {r['writer_us_per_run']:.1f}) "
                f"· {r['jobs_cpu_s']:.1f} "
                f"| {r['run_rss_mb']:.0f} MB ({r['jobs_rss_mb']:.0f} MB) "
                f"| {r['db_bytes_per_run']:.0f} "
                f"| {r['show_at_s']:.1f} s ({r['show_at_cpu_s']:.1f} CPU-s) "
                f"| {r['replay_s']:.1f} s "
                f"({r['replay_cpu_s']:.1f} CPU-s; run {r['run_cpu_s']:.1f}) "
                f"| {r['replay_rss_mb']:.0f} MB | {r['resume_s']:.1f} s "
                f"({r['resume_cpu_s']:.1f} CPU-s) ({r['killed_at_events']:,}) "
                f"| {r['resume_own_rss_mb']:.0f} MB ({r['resume_rss_mb']:.0f} MB) |",
                flush=True,
            )
            for f in Path(d).iterdir():
                f.unlink()
    # Issue 14: a run must replay in less time than it took (under 1 here).
    print("\nreplay's wall time over the run's (publish to idle): " + "; ".join(replays))
    if flat:
        print("flat at scale (runs/s over the first size's): " + "; ".join(flat))
        print("the same, to each run's log closed: " + "; ".join(closed))


def _flat(n: int, first: int, r: dict[str, float], base: dict[str, float], to: str) -> str:
    """``n``'s runs/s (``to``: "" to idle, "closed_" to its log closed) over the first
    size's row and over the median of the first size's runs around it."""
    rate, around = r[f"{to}runs_per_s"], r[f"bracket_{to}runs_per_s"]
    return (
        f"{n:,}: {rate / base[f'{to}runs_per_s']:.2f} of the {first:,} row; "
        f"{rate / around:.2f} of the {first:,}-artifact runs around it "
        f"(median {around:,.0f} runs/s of {2 * BRACKET})"
    )


if __name__ == "__main__":
    main()
