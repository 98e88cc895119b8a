"""TUI benchmarks (issues 4 and 12). Prints numbers and the machine.

    python bench/bench_tui.py                 # all
    python bench/bench_tui.py fanout live     # some: startup | fanout | live | idle | filter

startup  a fresh process imports the TUI, paints the news run headless and quits;
         median of 3; and whether litellm or the runtime got imported (they must not).
fanout   a completed fan-out run, 8 agents x 12,500 items: 100,000 tasks, about
         412,000 events, written straight through the LogWriter. First paint,
         first lanes (the lanes show the run's agents with their counts so far), fully loaded
         (every event folded and the screen settled), key latency while loading
         and once loaded, p50/p95 two ways (see ``Keys``: until the screen showed
         the answer, and until the app is idle again), CPU-seconds of the app's
         process and of its fold process (less sensitive to the machine's load
         than wall times), peak RSS of both; medians of REPEATS (default 3)
         loads, key percentiles over the keys of all of them.
live     the same fan-out left open with 4,000 tasks in flight, then a writer in
         another process commits 1,000 events a second (tasks finishing) while the
         app follows it; key latency p50/p95 while following.
idle     CPU used by the app and its fold process over 10 s once loaded: on the
         completed run, and on a crashed run (no run.finished, its process dead).
filter   the completed fan-out loaded, the event log on screen, a filter typed: how
         long ``enter`` took to answer, how long until every list held all it
         matches (the fold process scans on between the screen's questions), and
         the latency of keys pressed meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import help_or_bad_args, machine, median, peak_rss_mb  # noqa: E402
from flock_es.tui import MonitorApp  # noqa: E402
from flock_es.tui.rows import Filter  # noqa: E402
from tests.tui_fanout import write_fanout_log  # noqa: E402
from tests.tui_logs import write_news_log  # noqa: E402

ITEMS = int(os.environ.get("ITEMS", "12500"))
REPEATS = int(os.environ.get("REPEATS", "3"))
IN_FLIGHT = 4_000
SIZE = (120, 40)

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
print(time.perf_counter() - t0, "litellm" in sys.modules, "flock_es.runtime" in sys.modules)
"""


def bench_startup(tmp: Path) -> None:
    db = tmp / "news.db"
    write_news_log(db)
    walls, inner, loaded = [], [], set()
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", STARTUP_SCRIPT, str(db)],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        walls.append(time.perf_counter() - t)
        inner.append(float(out[0]))
        loaded.add(f"litellm={out[1]} runtime={out[2]}")
    print(
        f"startup: process start to first paint and exit {median(walls) * 1000:.0f} ms median "
        f"(import + first paint {median(inner) * 1000:.0f} ms); imported: {', '.join(loaded)}"
    )


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def child_cpu(app: Any) -> float:
    """CPU-seconds used so far by the app's fold process (from /proc), 0 without one."""
    proc = getattr(app.server, "proc", None)
    if proc is None:
        return 0.0
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Drawn:
    """When the app last sent an update to the screen (its compositor's output)."""

    def __init__(self, app: Any) -> None:
        self.last = 0.0
        display = app._display

        def hook(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                self.last = time.perf_counter()
            display(screen, renderable)

        app._display = hook


class Keys:
    """Key latencies two ways: until the screen showed the answer, and until idle.

    ``drawn``: from the key to the last screen update before the app was idle
    again (a redraw of the fold that lands in between counts too): what a
    person sees. ``idle``: until Textual's pilot finds the process idle; its
    test (20 ms slices of process CPU, twice) takes 41-43 ms even for a key
    that does nothing, so it is an upper bound.
    """

    def __init__(self, app: Any) -> None:
        self.screen = Drawn(app)
        self.idle: list[float] = []
        self.drawn: list[float] = []

    async def press(self, pilot: Any, key: str) -> None:
        t = time.perf_counter()
        await pilot.press(key)
        self.idle.append(time.perf_counter() - t)
        if self.screen.last > t:  # a key that changed nothing on screen has no draw time
            self.drawn.append(self.screen.last - t)

    def summary(self) -> str:
        return (
            f"key to screen p50 {pct(self.drawn, 0.5) * 1000:.0f} ms, "
            f"p95 {pct(self.drawn, 0.95) * 1000:.0f} ms; until idle p50 "
            f"{pct(self.idle, 0.5) * 1000:.0f} ms, p95 {pct(self.idle, 0.95) * 1000:.0f} ms"
        )


async def load(db: Path, keys: bool = True) -> dict[str, Any]:
    app = MonitorApp(db)
    cpu0 = self_cpu()
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    loading, loaded = Keys(app), Keys(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        out["first"] = time.perf_counter() - t0
        out["first_cpu"] = self_cpu() - cpu0
        cycle = ["3", "4", "2", "down", "down", "8", "6", "7", "2", "up"]
        n = 0
        while not app.settled:
            if "lanes" not in out and app.frame.agents:
                out["lanes"] = time.perf_counter() - t0
            if keys:
                await loading.press(pilot, cycle[n % len(cycle)])
                n += 1
            await pilot.pause(0.1)
        out["full"] = time.perf_counter() - t0
        out.setdefault("lanes", out["full"])
        out["cpu_app"], out["cpu_fold"] = self_cpu() - cpu0, child_cpu(app)
        for i in range(20 if keys else 0):
            await loaded.press(pilot, cycle[i % len(cycle)])
    out["loading"], out["loaded"] = loading, loaded
    return out


def bench_fanout(tmp: Path) -> None:
    db = tmp / "fanout.db"
    t = time.perf_counter()
    n = write_fanout_log(db, ITEMS)
    print(f"fanout: wrote {n:,} events ({ITEMS * 8:,} tasks) in {time.perf_counter() - t:.1f} s")
    runs = []
    for i in range(REPEATS):
        r = asyncio.run(load(db))
        runs.append(r)
        print(
            f"fanout run {i + 1}: first paint {r['first'] * 1000:.0f} ms, first lanes "
            f"{r['lanes']:.1f} s, fully loaded {r['full']:.1f} s, {len(r['loading'].idle)} keys "
            f"while loading: {r['loading'].summary()}; CPU app {r['cpu_app']:.1f} s fold "
            f"{r['cpu_fold']:.1f} s; load {os.getloadavg()[0]:.1f}"
        )

    def med(key: str) -> float:
        return median([r[key] for r in runs])

    def keys(phase: str) -> Keys:  # the keys of every repeat together
        merged = Keys.__new__(Keys)
        merged.idle = [x for r in runs for x in r[phase].idle]
        merged.drawn = [x for r in runs for x in r[phase].drawn]
        return merged

    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    print(
        f"fanout ({REPEATS} loads): first paint {med('first') * 1000:.0f} ms "
        f"({med('first_cpu'):.2f} CPU-s); first lanes "
        f"{med('lanes'):.1f} s; fully loaded {med('full'):.1f} s while a key was pressed every "
        f"0.1 s (medians); key latency while loading: {keys('loading').summary()}; "
        f"once loaded: {keys('loaded').summary()}; "
        f"CPU-seconds: app {med('cpu_app'):.1f}, fold process {med('cpu_fold'):.1f}; "
        f"peak RSS: app {peak_rss_mb():.0f} MB, fold process {children:.0f} MB"
    )
    quiet = asyncio.run(load(db, keys=False))
    print(
        f"fanout: fully loaded with no keys pressed {quiet['full']:.1f} s "
        f"(CPU app {quiet['cpu_app']:.1f} s, fold {quiet['cpu_fold']:.1f} s)"
    )


WRITER = """
import asyncio, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from tests.tui_fanout import AGENTS, T0, run_task
from flock_es.log.writer import LogWriter
async def main():
    items, in_flight, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    w = await LogWriter.open(Path(sys.argv[1]))
    first = items * len(AGENTS) - in_flight // 2   # the waiting half: start and finish them
    j, start, sent = first, time.monotonic(), 0
    while time.monotonic() - start < seconds and j < items * len(AGENTS):
        unit = []
        while len(unit) < 100 and j < items * len(AGENTS):
            k, i = divmod(j, len(AGENTS))
            unit.extend(run_task(k, i, T0 + 100))
            j += 1
        await w.append(unit)
        sent += len(unit)
        await asyncio.sleep(max(0.0, start + sent / 1000 - time.monotonic()))
    await w.close()
    print(sent, time.monotonic() - start)
asyncio.run(main())
"""


def bench_live(tmp: Path) -> None:
    db = tmp / "live.db"
    n = write_fanout_log(db, ITEMS, live=True, in_flight=IN_FLIGHT, pid=os.getpid())
    print(f"live: wrote {n:,} events, {IN_FLIGHT:,} tasks in flight")

    async def run() -> tuple[Keys, str, float]:
        app = MonitorApp(db)
        lat = Keys(app)
        async with app.run_test(size=SIZE) as pilot:
            while not app.settled:
                await pilot.pause(0.2)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", WRITER, str(db), str(ROOT), str(ITEMS), str(IN_FLIGHT), "15",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            cycle = ["3", "down", "4", "2", "6", "up", "8", "2"]
            c0 = self_cpu() + child_cpu(app)
            while proc.returncode is None:
                await lat.press(pilot, cycle[len(lat.idle) % len(cycle)])
                await pilot.pause(0.1)
            out = (await proc.communicate())[0].decode().split()
            rate = float(out[0]) / float(out[1])
            t = time.perf_counter()
            while not app.settled:  # how far behind the writer the screen was
                await pilot.pause(0.05)
            lag = time.perf_counter() - t
            cpu = self_cpu() + child_cpu(app) - c0
            flight = app.vlist("tasks").row_count
        return (
            lat,
            f"{flight} in flight at the end, caught up {lag:.1f} s after the writer, "
            f"{cpu:.1f} CPU-s while following",
            rate,
        )

    lat, flight, rate = asyncio.run(run())
    print(
        f"live: following a run committing {rate:,.0f} events/s: key latency over "
        f"{len(lat.idle)} keys: {lat.summary()} ({flight}); load {os.getloadavg()[0]:.1f}"
    )


def cpu_idle(db: Path, seconds: float = 10.0) -> tuple[str, float]:
    async def run() -> tuple[str, float]:
        app = MonitorApp(db)
        async with app.run_test(size=SIZE) as pilot:
            while not app.settled:
                await pilot.pause(0.2)
            await pilot.pause(2.0)
            c0, t0 = self_cpu() + child_cpu(app), time.monotonic()
            await asyncio.sleep(seconds)
            c1, t1 = self_cpu() + child_cpu(app), time.monotonic()
            return app.frame.run_status(), 100 * (c1 - c0) / (t1 - t0)

    return asyncio.run(run())


def bench_idle(tmp: Path) -> None:
    done = tmp / "idle-done.db"
    write_fanout_log(done, 1_250)
    status, cpu = cpu_idle(done)
    print(f"idle: completed run ({status}): {cpu:.2f}% CPU over 10 s (app + fold process)")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed = tmp / "idle-crashed.db"
    write_fanout_log(crashed, 1_250, live=True, in_flight=2_000, pid=dead.pid)
    status, cpu = cpu_idle(crashed)
    print(
        f"idle: crashed run ({status}, process {dead.pid} gone): {cpu:.2f}% CPU over 10 s "
        "(app + fold process)"
    )


async def filtered(db: Path, words: str) -> dict[str, Any]:
    """Load ``db``, type ``words`` into the filter: the time until ``enter`` returned, until
    the lists were whole, and the keys pressed (every 0.2 s) while they filled."""
    app = MonitorApp(db)
    keys = Keys(app)
    async with app.run_test(size=SIZE) as pilot:
        while not app.settled:
            await pilot.pause(0.2)
        await pilot.press("6", "slash", *words)
        t = time.perf_counter()
        await pilot.press("enter")
        out: dict[str, Any] = {"enter": time.perf_counter() - t, "keys": keys}
        while not app.settled:
            await keys.press(pilot, "down" if len(keys.idle) % 2 else "up")
            await pilot.pause(0.2)
        out["whole"] = time.perf_counter() - t
        out["lists"] = dict(app.frame.lists)
    return out


def bench_filter(tmp: Path) -> None:
    db = tmp / "filter.db"
    n = write_fanout_log(db, ITEMS)
    print(f"filter: wrote {n:,} events ({ITEMS * 8:,} tasks)")
    for words in ("kind:task.failed", "item 1234"):
        r = asyncio.run(filtered(db, words))
        print(
            f"filter {words!r} on the event log: enter answered in {r['enter']:.2f} s, lists "
            f"whole after {r['whole']:.1f} s ({r['lists']}); {len(r['keys'].idle)} keys "
            f"meanwhile: {r['keys'].summary()}; one frame scanning it whole "
            f"{whole_frame(db, words):.1f} s; load {os.getloadavg()[0]:.1f}"
        )


def whole_frame(db: Path, words: str) -> float:
    """Seconds of one frame that scans the filter whole before it answers (no slices)."""
    from flock_es.log.reader import LogReader
    from flock_es.tui import server, sources
    from flock_es.tui.monitor import Monitor

    with LogReader(db) as log:
        s = server.ViewServer(Monitor(log), log)
        s.m.catch_up()
        saved = sources.SCAN_SECONDS, server.SCAN_SECONDS
        sources.SCAN_SECONDS = server.SCAN_SECONDS = 1e9
        try:
            t = time.perf_counter()
            s.frame(server.ViewRequest(flt=Filter.parse(words), view="log"))
            return time.perf_counter() - t
        finally:
            sources.SCAN_SECONDS, server.SCAN_SECONDS = saved


def main() -> None:
    help_or_bad_args(__doc__, {"startup", "fanout", "live", "idle", "filter"})
    which = sys.argv[1:] or ["startup", "fanout", "live", "idle", "filter"]
    print(machine())
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    os.environ.setdefault("NO_COLOR", "1")
    benches = {"startup": bench_startup, "fanout": bench_fanout, "live": bench_live}
    benches["idle"], benches["filter"] = bench_idle, bench_filter
    with tempfile.TemporaryDirectory() as d:
        for name in which:
            benches[name](Path(d))
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
