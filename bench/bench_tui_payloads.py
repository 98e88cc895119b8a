"""The TUI on a document-sized payload: how long each step holds the screen.

    python bench/bench_tui_payloads.py                  # documents of 0.2, 2 and 20 MB
    python bench/bench_tui_payloads.py --mb 2           # one size

For each size, a real run (SQLite, the offline model): one ``Doc`` artifact
holding a text of that many MB, read by a model agent whose prompt holds it
again. The real app (Textual's Pilot, 120x40) then, each step timed from its
key to the screen settled again: select the document in the Artifacts view
(its payload beside the list), a key down and back up, open its detail, back,
open the agent and then its task (the input and the prompt), and resize the
terminal under that detail. Before ``tui/bounded.py`` each of them laid out the
whole payload. (``--root``, as other benches take it, would not switch the TUI:
the installed ``flock_es.tui`` maps to this checkout's ``tui/``.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: bench.*

from pydantic import BaseModel

from bench._machine import machine
from flock_es import Flock
from flock_es.tui import MonitorApp


class Doc(BaseModel):
    title: str
    text: str


class Summary(BaseModel):
    title: str
    words: int


async def write_run(db: Path, chars: int) -> None:
    flock = Flock(db=db, model="offline")
    flock.agent("summariser").description("summarise").consumes(Doc).publishes(Summary)
    await flock.start()
    text = ("lorem ipsum dolor sit amet " * (chars // 27 + 1))[:chars]
    await flock.publish(Doc(title="big", text=text))
    await flock.run_until_idle()
    await flock.close()


async def steps(db: Path) -> dict[str, float]:
    """Seconds per step, each from its keys to the app idle again."""
    app = MonitorApp(db)
    out: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 120
        while not app.settled and time.monotonic() < deadline:
            await pilot.pause(0.02)

        async def step(name: str, *keys: str) -> None:
            t0 = time.perf_counter()
            await pilot.press(*keys)
            await pilot.pause()
            out[name] = time.perf_counter() - t0

        await step("artifacts view", "4")
        keys = app.vlist("artifacts").keys()  # a VirtualList's row keys, not a dict's
        ahead = next(i for i, k in enumerate(keys) if _is_doc(app, k))
        await step("select the document", "home", *["down"] * ahead)
        await step("key down and up", "down", "up")
        await step("open its detail", "enter")
        await step("back", "escape")
        await step("open the agent", "2", "enter")
        await step("open its task", "enter")
        t0 = time.perf_counter()
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        out["resize under the task"] = time.perf_counter() - t0
    return out


def _is_doc(app: MonitorApp, key: str) -> bool:
    a = app.server.artifact(key)[0] if app.server is not None else None
    return a is not None and a.type == "Doc"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_tui_payloads.py", description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, action="append", help="document size in MB (repeatable)")
    args = ap.parse_args(argv)
    print(machine())
    rows: dict[str, dict[str, float]] = {}
    for mb in args.mb or [0.2, 2.0, 20.0]:
        with tempfile.TemporaryDirectory() as d:
            db = Path(d) / "doc.db"
            asyncio.run(write_run(db, int(mb * 1_000_000)))
            rows[f"{mb:g} MB"] = asyncio.run(steps(db))
        print(f"  {mb:g} MB done", file=sys.stderr)
    sizes = list(rows)
    print("| step | " + " | ".join(sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in rows[sizes[0]]:
        print(f"| {name} | " + " | ".join(f"{rows[s][name]:.2f} s" for s in sizes) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
