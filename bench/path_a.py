"""Instructions on the critical path of workload (a) fn, counted by callgrind (no drift).

    python bench/path_a.py                     # this checkout
    python bench/path_a.py /work/wt/base       # another one (its flock_es on sys.path)

Wall time of (a) on a shared host drifts by milliseconds; instruction counts do not.
The child runs the news seed (8 ``async def`` analysts, a batching editor) under
``valgrind --tool=callgrind --dump-before=getppid``, and calls ``os.getppid()`` at
six points (publish, first analyst's body, its wake, the editor's start, its wake,
idle): each dump then holds one segment. Three are flock-es's critical path
(publish -> first analyst; first analyst's wake -> editor's start; editor's wake
-> idle), the other two are the agents' sleeps. Sleeps are 1 s and the group
commit's time limits x200, so the slowed run takes the paths a native one takes
(inline commits at the loop's select). Both threads are counted; system calls
are not (their kernel time is not in the instructions). The collector is off in
the child: a young-generation collection (~140k instructions) lands on the path
or off it as allocation counts shift with any change, and made the count jump
between two values (3,934k and 3,796k on the same checkout).
"""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))  # the repo root: this checkout's bench package
SEGMENTS = ("publish->analyst", "(analysts sleep)", "wake->editor", "(editor sleeps)", "wake->idle")


def child(root: str) -> None:
    import gc

    gc.disable()  # see the module docstring: collections land anywhere on the path
    # The seed's module is this checkout's (one under test may lack it), the flock_es it
    # imports root's: the bench package is imported before root goes first on the path,
    # the module after.
    import bench  # noqa: F401

    sys.path.insert(0, root)
    from bench._news_seed import Analysis, Digest, News, wire_news
    from flock_es import Flock
    from flock_es.log import thread_drain as td

    for name in ("INLINE_IDLE", "INLINE_IDLE_SYNCED", "HOLD_MAX", "HOLD_MAX_SYNCED"):
        setattr(td, name, getattr(td, name) * 200)
    marking = [False]
    seen: set[str] = set()

    def mark(once: str = "") -> None:
        if marking[0] and once not in seen:
            if once:
                seen.add(once)
            os.getppid()

    async def news(db: Path) -> None:
        flock = Flock(db=db)

        async def analyse(n: News) -> Analysis:
            mark("body")
            await asyncio.sleep(1.0)
            mark("wake")
            return Analysis(category="c")

        async def edit(batch: list[Analysis]) -> Digest:
            mark()
            await asyncio.sleep(1.0)
            mark()
            return Digest(headline="h", total=len(batch))

        wire_news(flock, analyse, edit, batch_timeout=300)
        await flock.start()
        mark()
        await flock.publish(News(headline="h"))
        await flock.run_until_idle()
        mark()
        marking[0] = False
        await flock.close()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(news(Path(d) / "warm.db"))  # imports and first-call caches
        marking[0] = True
        asyncio.run(news(Path(d) / "measured.db"))


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
        return 0
    root = sys.argv[1] if len(sys.argv) > 1 else str(HERE)
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--dump-before=getppid",
            f"--callgrind-out-file={out}/cg.out",
            sys.executable,
            __file__,
            "--child",
            root,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        counts = []
        for path in sorted(glob.glob(f"{out}/cg.out.*"), key=lambda p: int(p.rsplit(".", 1)[1])):
            with open(path) as f:
                total = next(line for line in f if line.startswith(("summary:", "totals:")))
            counts.append(int(total.split()[1]))
    parts = counts[1:6]  # the first dump is everything before the publish
    for name, n in zip(SEGMENTS, parts, strict=True):
        print(f"{name:18s} {n / 1000:9,.0f}k")
    critical = parts[0] + parts[2] + parts[4]
    print(f"{'critical path':18s} {critical / 1000:9,.0f}k instructions  ({root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
