"""``log/pg_rows``: a commit's rows in one statement a table, on a real PostgreSQL.

What a row says must not depend on how it was sent: each test writes the same
rows one statement each (``executemany``, as before) and as one JSON text, and
reads back the same values, an event's body to the character.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from flock_es.log import pg_rows
from flock_es.log.pg_rows import insert_events_json, insert_rows
from flock_es.log.pg_schema import migrate, pg_connect
from tests.pg import pg_url  # noqa: F401  (fixture)

CONSUMPTION = (
    "INSERT INTO consumptions(run_id, artifact_id, task_id, agent, seq, ts) "
    "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"
)
ROWS = [
    ("r", f"a{i}", f"t{i}", 'agent é \u2028 "quoted"', i, 1_796_203_889.303_278_4 + i / 3)
    for i in range(5)
]


def _read(url: str, sql: str) -> list[tuple[Any, ...]]:
    with pg_connect(url) as con:
        return con.execute(sql).fetchall()


async def _write(url: str, sql: str, rows: list[tuple[Any, ...]], json: bool) -> None:
    connect = psycopg.AsyncConnection.connect(url, autocommit=True)
    async with await connect as con, con.transaction(), con.cursor() as cur:
        if json:
            await insert_rows(cur, sql, rows)
        else:
            await cur.executemany(sql, rows)


@pytest.fixture
def db(pg_url: str) -> str:  # noqa: F811
    with pg_connect(pg_url, create=True) as con:
        migrate(con, pg_url)
    return pg_url


def test_rows_sent_as_json_read_back_as_rows_sent_one_by_one(db: str) -> None:
    asyncio.run(_write(db, CONSUMPTION, ROWS, json=False))
    one_by_one = _read(db, "SELECT * FROM consumptions ORDER BY seq")
    with pg_connect(db) as con:
        con.execute("DELETE FROM consumptions")
    asyncio.run(_write(db, CONSUMPTION, ROWS, json=True))
    assert _read(db, "SELECT * FROM consumptions ORDER BY seq") == one_by_one
    assert [r[-1] for r in one_by_one] == [r[-1] for r in ROWS]  # floats exact


def test_rows_past_a_chunk_go_in_several_statements_in_order(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_rows, "CHUNK", 2)
    asyncio.run(_write(db, CONSUMPTION, ROWS, json=True))
    assert _read(db, "SELECT artifact_id FROM consumptions ORDER BY seq") == [(r[1],) for r in ROWS]


def test_a_statement_that_is_not_a_plain_insert_goes_row_by_row(db: str) -> None:
    asyncio.run(_write(db, CONSUMPTION, ROWS, json=True))
    update = "UPDATE consumptions SET agent = %s WHERE seq = %s"
    asyncio.run(_write(db, update, [("x", 1), ("y", 2)], json=True))
    assert _read(db, "SELECT agent FROM consumptions WHERE seq IN (1, 2) ORDER BY seq") == [
        ("x",),
        ("y",),
    ]


def test_event_bodies_are_stored_as_the_text_they_were(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_rows, "CHUNK", 2)
    bodies = ['{"b":1,"a":[1.5e-7,"x\\u00e9\\n"],  "z":{"k":null}}', "{}", '{"s":"\u2028"}']
    rows: list[tuple[int, str, str, float, int, str | None]] = [
        (i + 1, "r", "task.completed", 0.1 + 0.2 + i, 1, None if i else "t") for i in range(3)
    ]

    async def write() -> None:
        connect = psycopg.AsyncConnection.connect(db, autocommit=True)
        async with await connect as con, con.transaction(), con.cursor() as cur:
            await insert_events_json(cur, rows, bodies)

    asyncio.run(write())
    back = _read(
        db, "SELECT seq, run_id, kind, ts, v, task_id, body::text FROM events ORDER BY seq"
    )
    assert back == [(*row, body) for row, body in zip(rows, bodies, strict=True)]
