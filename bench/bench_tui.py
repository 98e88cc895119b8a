"""TUI benchmarks of issue 4. Prints numbers and the machine.

    python bench/bench_tui.py            # all three
    python bench/bench_tui.py startup    # one of them: startup | large | latency

startup  a fresh process that imports the TUI, opens the news log, paints
         the first screen (headless) and quits; median of 5. Also whether
         litellm got imported (it must not).
large    fold and first paint of a 100,000-event, 20,000-artifact log: the
         pure fold (Monitor.catch_up), then the app until every event is
         folded and on screen; plus one jump back in time to the middle.
latency  a writer in another process commits one event every 0.2 s; the time
         from its commit to the row being on screen in the app; median, p95.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import machine, median, peak_rss_mb  # noqa: E402
from flock_es.log.reader import LogReader  # noqa: E402
from flock_es.tui import Monitor, MonitorApp  # noqa: E402
from flock_es.tui.widgets import LogTable  # noqa: E402
from tests.tui_logs import write_large_log, write_news_log  # noqa: E402

STARTUP_SCRIPT = """
import asyncio, sys, time
t0 = time.perf_counter()
from pathlib import Path
from flock_es.tui import MonitorApp
async def main():
    app = MonitorApp(Path(sys.argv[1]))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
asyncio.run(main())
print(time.perf_counter() - t0, "litellm" in sys.modules)
"""


def bench_startup(tmp: Path) -> None:
    db = tmp / "news.db"
    write_news_log(db)
    walls, inner, litellm = [], [], set()
    for _ in range(5):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", STARTUP_SCRIPT, str(db)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        walls.append(time.perf_counter() - t)
        inner.append(float(out[0]))
        litellm.add(out[1])
    print(
        f"startup: process start to first paint and exit {median(walls) * 1000:.0f} ms median "
        f"(import + first paint {median(inner) * 1000:.0f} ms); litellm imported: "
        f"{', '.join(sorted(litellm))}"
    )


def bench_large(tmp: Path) -> None:
    db = tmp / "large.db"
    t = time.perf_counter()
    n = write_large_log(db)
    print(f"large: wrote {n:,} events / 20,000 artifacts in {time.perf_counter() - t:.1f} s")
    folds = []
    for _ in range(3):
        with LogReader(db) as log:
            t = time.perf_counter()
            Monitor(log).catch_up()
            folds.append(time.perf_counter() - t)
    print(f"large: fold only (read + apply) {median(folds):.2f} s median of 3")

    async def app_run() -> tuple[float, float, float]:
        app = MonitorApp(db)
        t0 = time.perf_counter()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            first = time.perf_counter() - t0
            while not app.monitor.caught_up:
                await pilot.pause(0.01)
            await pilot.pause()
            full = time.perf_counter() - t0
            t1 = time.perf_counter()
            app.travel_to(app.monitor.seqs[len(app.monitor.seqs) // 2])
            await pilot.pause()
            jump = time.perf_counter() - t1
        return first, full, jump

    first, full, jump = asyncio.run(app_run())
    print(
        f"large: first paint {first * 1000:.0f} ms (the first chunk), all 100,001 events "
        f"folded and on screen {full:.2f} s, jump back to the middle {jump:.2f} s; "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )


WRITER = """
import asyncio, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from tests.tui_logs import LARGE_RUN, unit_events
from flock_es.log.writer import LogWriter
async def main():
    w = await LogWriter.open(Path(sys.argv[1]))
    for n in range(int(sys.argv[3])):
        e = unit_events(LARGE_RUN, range(10**6 + n, 10**6 + n + 1))[0]
        await w.append([e])
        print(e.seq, time.time(), flush=True)
        await asyncio.sleep(0.2)
    await w.close()
asyncio.run(main())
"""


def bench_latency(tmp: Path) -> None:
    db = tmp / "latency.db"
    write_large_log(db, units=100)
    count = 30

    async def run() -> list[float]:
        app = MonitorApp(db)
        seen: dict[int, float] = {}
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITER,
                str(db),
                str(ROOT),
                str(count),
                stdout=asyncio.subprocess.PIPE,
            )
            log = app.query_one("#log-table", LogTable)

            def look() -> None:
                now = time.time()
                for seq in log.slot_seq.values():
                    seen.setdefault(seq, now)

            while proc.returncode is None:
                await pilot.pause(0.002)
                look()
            assert proc.stdout is not None
            commits = [line.split() for line in (await proc.stdout.read()).decode().splitlines()]
            deadline = time.monotonic() + 2
            while any(int(s) not in seen for s, _ in commits) and time.monotonic() < deadline:
                await pilot.pause(0.002)
                look()
        return [seen[int(s)] - float(ts) for s, ts in commits if int(s) in seen]

    lat = sorted(asyncio.run(run()))
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
    print(
        f"latency: commit to on-screen over {len(lat)} events (poll every 0.1 s): "
        f"median {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {lat[-1] * 1000:.0f} ms"
    )


def main() -> None:
    which = sys.argv[1:] or ["startup", "large", "latency"]
    print(machine())
    os.environ.setdefault("NO_COLOR", "1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in which:
            {"startup": bench_startup, "large": bench_large, "latency": bench_latency}[name](tmp)


if __name__ == "__main__":
    main()
