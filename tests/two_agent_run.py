"""The small run the schema-upgrade tests write before and after an upgrade.

Two function agents, ``one`` and ``two``, each answer every artifact of
``given`` with one of ``made`` (``two`` appends "?"): a few artifacts, their
tags, correlations and consumptions, enough for every read model to hold rows.

Example::

    run_id = await two_agent_run(db, Memo, Reply, 4)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from flock_es import Flock

__all__ = ["two_agent_run"]


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
