"""``flock-es show --at SEQ`` on a log of 100,000 events: time taken.

    python bench/bench_show.py

The log: 20,000 items, each handled by a Python-function agent (published,
scheduled, started, output, completed: 5 events an item), one run of about
100,000 events. Measured: the fold up to a seq in the middle and at the end
(in process), and the ``flock-es show RUN --at SEQ --json`` command as a user
runs it (a subprocess, including Python start-up).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import help_or_bad_args, machine, median
from flock_es import Flock
from flock_es.log.reader import LogReader
from flock_es.runtime.resume import load_run

ITEMS = 20_000


class Item(BaseModel):
    n: int


class Out(BaseModel):
    n: int


async def record(db: Path) -> str:
    flock = Flock(db=db)
    flock.agent("f").consumes(Item).publishes(Out).with_function(lambda i: Out(n=i.n))
    for start in range(0, ITEMS, 1000):
        await flock.publish_many(Item(n=i) for i in range(start, start + 1000))
        await flock.run_until_idle()
    await flock.close()
    return flock.run_id


def main() -> None:
    help_or_bad_args(__doc__)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.db"
        t0 = time.perf_counter()
        run_id = asyncio.run(record(db))
        with LogReader(db) as reader:
            last = reader.last_seq(run_id)
        print(f"log: {last} events (recorded in {time.perf_counter() - t0:.1f} s)")
        for label, at in (("middle", last // 2), ("end", last)):
            folds = []
            for _ in range(5):
                t0 = time.perf_counter()
                with LogReader(db) as reader:
                    state = load_run(reader, run_id, at)
                folds.append(time.perf_counter() - t0)
            print(f"fold --at {at} ({label}, {state.events} events): median {median(folds):.3f} s")
        env = dict(os.environ, NO_COLOR="1")
        cli = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "flock_es.cli.app",
                    "show",
                    run_id,
                    "--db",
                    str(db),
                    "--at",
                    str(last // 2),
                    "--json",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            cli.append(time.perf_counter() - t0)
        assert out.stdout.startswith("{")
        print(
            f"flock-es show --at {last // 2} --json (subprocess, incl. start-up and JSON of "
            f"{len(out.stdout) // 1024} KiB): median {median(cli):.3f} s"
        )


if __name__ == "__main__":
    main()
