"""The small run the schema-upgrade tests write before and after an upgrade.

Two function agents, ``one`` and ``two``, each answer every artifact of
``given`` with one of ``made`` (``two`` appends "?"): a few artifacts, their
tags, correlations and consumptions, enough for every read model to hold rows.

``upgraded_pg_version`` opens and closes a writer on a PostgreSQL database,
which upgrades its schema, and returns the version it then records.

Example::

    run_id = await two_agent_run(db, Memo, Reply, 4)
    assert upgraded_pg_version(pg_url) == str(PG_SCHEMA_VERSION)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from flock_es import Flock
from flock_es.log.ports import open_store

__all__ = ["two_agent_run", "upgraded_pg_version"]


async def two_agent_run(
    db: Path | str,
    given: type[BaseModel],
    made: type[BaseModel],
    n: int,
    tags: set[str] | None = None,
) -> str:
    """Publish ``n`` objects of ``given`` (``text`` "0", "1", ...) to a new run of ``db``,
    run it until idle and close it; its run id."""
    flock = Flock(db=db)
    flock.agent("one").consumes(given).with_function(lambda m: made(text=m.text))
    flock.agent("two").consumes(given).with_function(lambda m: made(text=m.text + "?"))
    await flock.publish_many([given(text=str(i)) for i in range(n)], tags=tags)
    await flock.run_until_idle()
    await flock.close()
    assert flock.run_id is not None
    return flock.run_id


def upgraded_pg_version(pg_url: str) -> str | None:
    """Open a writer on ``pg_url`` (its first write upgrades the schema), close it, and
    return the schema version the database then records."""
    from flock_es.log.pg_schema import pg_connect

    async def write() -> None:
        w = await open_store(pg_url).open_writer()
        await w.close()

    asyncio.run(write())
    with pg_connect(pg_url) as con:
        row = con.execute("SELECT value FROM flock_es_meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else str(row[0])
