"""SQLite upgrades that remake a read model's table in a new layout.

Schema 5 (issue 14): ``artifacts``, ``artifact_tags`` and ``consumptions`` lose
their primary keys. A key on ``(run_id, id)`` is a digest-keyed index, written at
a random place on every insert; schema 5 indexes ids by epoch instead
(``query_models.EPOCH``). Schema 8: ``artifacts`` is keyed by ``seq`` and keeps
no copy of the payload (the event's body holds it). SQLite can change neither
in place, so each such table is copied into its new layout (the columns both
share), in seq order, inside the upgrade's transaction (``schema.initialise``).

Example::

    remake_tables(con, version=4)   # then schema.DDL makes the new indexes
"""

from __future__ import annotations

import sqlite3

from flock_es.log.schema import DDL, statements

__all__ = ["UNKEYED", "remade", "remake_tables"]

UNKEYED = ("artifacts", "artifact_tags", "consumptions")
"""The tables schema 5 made without a primary key."""


def remade(version: int) -> tuple[str, ...]:
    """The tables an upgrade from ``version`` copies into a new layout."""
    if 0 < version < 5:
        return UNKEYED
    return ("artifacts",) if 0 < version < 8 else ()


def remake_tables(con: sqlite3.Connection, version: int) -> None:
    """The tables of ``remade(version)`` in the layout of ``DDL`` (a file at ``version``).

    Files older than 3 are re-derived from their events afterwards: their tables are
    just dropped. The old indexes go with the old tables; ``DDL`` makes the new ones.
    """
    for table in remade(version):
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            continue
        if version < 3:
            con.execute(f"DROP TABLE {table}")
            continue
        old = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
        con.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
        for stmt in statements(DDL):  # the new table alone (its indexes come after)
            if stmt.startswith(f"CREATE TABLE IF NOT EXISTS {table} ("):
                con.execute(stmt)
        new = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        cols = ", ".join(c for c in old if c in new)
        con.execute(f"INSERT INTO {table}({cols}) SELECT {cols} FROM {table}_old ORDER BY seq")
        con.execute(f"DROP TABLE {table}_old")
