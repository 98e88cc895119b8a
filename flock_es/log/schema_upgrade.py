"""Schema 4 -> 5 on SQLite: the read models lose their primary keys (issue 14).

A key on ``(run_id, id)`` is a digest-keyed index, written at a random place on
every insert; schema 5 indexes ids by epoch instead (``query_models.EPOCH``).
SQLite cannot drop a key in place, so each table is copied into its new layout,
in seq order, inside the upgrade's transaction (``schema.initialise``).

Example::

    drop_keys(con, version=4)   # then schema.DDL makes the new indexes
"""

from __future__ import annotations

import sqlite3

from flock_es.log.schema import DDL, statements

__all__ = ["UNKEYED", "drop_keys"]

UNKEYED = ("artifacts", "artifact_tags", "consumptions")
"""The tables schema 5 made without a primary key."""


def drop_keys(con: sqlite3.Connection, version: int) -> None:
    """The tables of ``UNKEYED`` without their primary keys (a file at ``version`` < 5).

    Files older than 3 are re-derived from their events afterwards: their tables are
    just dropped. The old indexes go with the old tables; ``DDL`` makes the new ones.
    """
    for table in UNKEYED:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            continue
        if version < 3:
            con.execute(f"DROP TABLE {table}")
            continue
        cols = ", ".join(r[1] for r in con.execute(f"PRAGMA table_info({table})"))
        con.execute(f"ALTER TABLE {table} RENAME TO {table}_v4")
        for stmt in statements(DDL):  # the new table alone (its indexes come after)
            if stmt.startswith(f"CREATE TABLE IF NOT EXISTS {table} ("):
                con.execute(stmt)
        con.execute(f"INSERT INTO {table}({cols}) SELECT {cols} FROM {table}_v4 ORDER BY seq")
        con.execute(f"DROP TABLE {table}_v4")
