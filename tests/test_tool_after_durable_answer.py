"""A tool the model asks for runs only once the paid answer that asked is durable.

Otherwise a crash between the tool and the answer's commit would re-pay the call
on resume and run the tool (which may act on the world) a second time. The tool
here looks into the real SQLite file from its own connection, as a second
process would after a crash.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pydantic import BaseModel

from flock_es import Flock

SEEN: list[int] = []
DB: list[Path] = []


class Ticket(BaseModel):
    text: str


class Reply(BaseModel):
    text: str


def lookup(query: str) -> str:
    """Look a query up (counts the durable model.called events when it runs)."""
    con = sqlite3.connect(f"file:{DB[0]}?mode=ro", uri=True)
    try:
        (n,) = con.execute("SELECT count(*) FROM events WHERE kind = 'model.called'").fetchone()
    finally:
        con.close()
    SEEN.append(n)
    return f"found {query}"


def test_the_answer_that_asks_for_a_tool_is_durable_before_the_tool_runs(tmp_path: Path) -> None:
    DB[:] = [tmp_path / "tools.db"]
    SEEN.clear()

    async def main() -> None:
        flock = Flock(db=DB[0], model="offline")
        flock.agent("helper").consumes(Ticket).publishes(Reply).with_tools([lookup])
        await flock.start()
        await flock.publish(Ticket(text="where is my parcel"))
        await flock.run_until_idle()
        await flock.close()

    asyncio.run(main())
    assert SEEN == [1]  # the offline model calls each tool once, then answers
