"""The gap problem on PostgreSQL: a reader polling ``seq > cursor`` never skips.

Four writer processes append concurrently (each with its own group commit);
a reader polls as fast as it can and checks, on every poll, that what it got
starts right after its cursor and has no hole. At the end it has seen every
event exactly once, in seq order.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from flock_es.log.pg_reader import PgLogReader
from flock_es.log.pg_writer import PgLogWriter
from tests.pg import pg_url  # noqa: F401  (fixture)

WRITER = textwrap.dedent(
    """
    import asyncio, random, sys, time
    from flock_es.domain.events import ArtifactPublished, EventKind, make_event
    from flock_es.log.pg_writer import PgLogWriter

    async def main(url, name, units):
        w = await PgLogWriter.open(url)
        rnd = random.Random(name)
        async def unit(i):
            n = rnd.randint(1, 4)
            evs = [
                make_event(name, EventKind.ARTIFACT_PUBLISHED,
                           ArtifactPublished(id=f"{name}-{i}-{k}", type="S", payload={}),
                           time.time())
                for k in range(n)
            ]
            await w.append(evs)
            return n
        total = 0
        for start in range(0, units, 8):
            total += sum(await asyncio.gather(*(unit(i) for i in range(start, start + 8))))
        await w.close()
        print(total)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_migrate_then_start(pg_url: str) -> None:  # noqa: F811
    # The writer creates the schema on first use; the reader needs it to exist.
    w = await PgLogWriter.open(pg_url)
    await w.close()
    PgLogReader(pg_url).close()


def test_a_polling_reader_never_skips_a_late_commit(pg_url: str) -> None:  # noqa: F811
    import asyncio

    asyncio.run(test_migrate_then_start(pg_url))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, pg_url, f"w{i}", "240"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    seen: list[int] = []
    polls_with_news = 0
    with PgLogReader(pg_url) as reader:
        deadline = time.time() + 90
        while time.time() < deadline:
            cursor = seen[-1] if seen else 0
            new = [e.seq for e in reader.events_after(cursor)]
            if new:
                polls_with_news += 1
                # Everything after the cursor, with no hole: a hole here would be an
                # event that a later poll (from the new cursor) could never see.
                assert new == list(range(cursor + 1, cursor + 1 + len(new)))
                seen.extend(s for s in new if s is not None)
            if all(p.poll() is not None for p in procs) and not new:
                break
        total = sum(int(p.communicate(timeout=60)[0].strip()) for p in procs)
        seen.extend(e.seq for e in reader.events_after(seen[-1]) if e.seq is not None)
    assert all(p.returncode == 0 for p in procs)
    assert seen == list(range(1, total + 1))
    assert polls_with_news > 4  # the reader really read while the writers committed
