"""Many rows in one PostgreSQL statement: ``INSERT INTO t(...) SELECT ... FROM
json_populate_recordset(NULL::t, $1)``.

psycopg's ``executemany`` sends one statement per row, each through its Python
machinery (its parameters dumped one by one, the statement looked up among the
prepared ones, its result read), and a multi-row ``VALUES`` list is parsed again
in Python for each of its placeholders (psycopg caches no statement of more than
50 of them). A shared run commits some four rows an agent run (events,
artifacts, consumptions). Here the rows go as one JSON text, which
pydantic-core writes (in Rust) and the server parses (in C), and the table's own
row type gives each column its type. An event's body, already JSON text, goes in
as it is (``insert_events_json``): a ``json`` column keeps the text it is given.

``executemany`` stays where a statement is not one plain ``INSERT ... VALUES
(...)`` (updates; ``ON CONFLICT DO UPDATE``, which may not touch a row twice
in one statement).

Example::

    await insert_rows(cur, "INSERT INTO t(a, b) VALUES (%s,%s)", [(1, "x"), (2, "y")])
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from pydantic_core import to_json

__all__ = ["CHUNK", "insert_events_json", "insert_rows"]

CHUNK = 2_000
"""Rows in one statement at most: the JSON of a unit of a large publish is made and
sent a chunk at a time, not whole."""

_ONE_ROW = re.compile(
    r"^INSERT INTO (\w+)\(([\w, ]+)\) VALUES \((?:%s,)*%s\)( ON CONFLICT DO NOTHING)?$"
)


def _from_json(table: str, columns: str, tail: str = "") -> str:
    return (
        f"INSERT INTO {table}({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{table}, %s::json){tail}"
    )


async def insert_rows(
    cur: psycopg.AsyncCursor[tuple[Any, ...]], sql: str, rows: list[tuple[Any, ...]]
) -> None:
    """``cur.executemany(sql, rows)``, as one statement a chunk where ``sql`` allows."""
    m = _ONE_ROW.match(sql)
    if m is None or len(rows) < 2:
        await cur.executemany(sql, rows)
        return
    table, columns, tail = m.group(1), m.group(2), m.group(3) or ""
    names = [c.strip() for c in columns.split(",")]
    statement = _from_json(table, columns, tail)
    for i in range(0, len(rows), CHUNK):
        chunk = [dict(zip(names, row, strict=True)) for row in rows[i : i + CHUNK]]
        await cur.execute(statement, (to_json(chunk).decode(),))


_EVENT_COLUMNS = "seq, run_id, kind, ts, v, task_id, body"
_INSERT_EVENTS = _from_json("events", _EVENT_COLUMNS)


async def insert_events_json(
    cur: psycopg.AsyncCursor[tuple[Any, ...]],
    rows: list[tuple[int, str, str, float, int, str | None]],
    bodies: list[str],
) -> None:
    """Insert event rows (every column but the body) with their bodies, JSON texts
    spliced in as they are, a chunk a statement."""
    for i in range(0, len(rows), CHUNK):
        parts = []
        for (seq, run_id, kind, ts, v, task_id), body in zip(
            rows[i : i + CHUNK], bodies[i : i + CHUNK], strict=True
        ):
            head = to_json(
                {"seq": seq, "run_id": run_id, "kind": kind, "ts": ts, "v": v, "task_id": task_id}
            )
            parts.append(f'{head[:-1].decode()},"body":{body}}}')
        await cur.execute(_INSERT_EVENTS, (f"[{','.join(parts)}]",))
