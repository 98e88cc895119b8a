"""``insert_rows``: many rows in few statements, every row once and in order."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from flock_es.log import sqlite_rows
from flock_es.log.sqlite_rows import chunk_rows, insert_flat, insert_rows


def _table() -> sqlite3.Connection:
    con = sqlite3.connect(":memory:", isolation_level=None)  # no implicit BEGIN
    con.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c REAL)")
    return con


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 16, 37, 100])
def test_every_row_lands_once_in_order(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_rows, "CHUNK", 8)
    con = _table()
    statements: list[str] = []
    con.set_trace_callback(statements.append)
    rows = [(i, f"x{i}", i / 3) for i in range(n)]
    insert_rows(con, "INSERT INTO t(a, b, c)", 3, iter(rows))  # an iterator will do
    assert con.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall() == rows
    # Full chunks of 8, then the rest in powers of two: one statement each.
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == n // 8 + bin(n % 8).count("1")


def test_older_sqlite_parameter_limits_are_kept() -> None:
    con = _table()
    con.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # SQLite before 3.32
    rows = [(i, "x", 0.5) for i in range(2000)]
    insert_rows(con, "INSERT INTO t(a, b, c)", 3, rows)
    assert con.execute("SELECT count(*), sum(a) FROM t").fetchone() == (2000, sum(range(2000)))


def test_or_ignore_skips_duplicates_within_one_statement() -> None:
    con = _table()

    def rows() -> Iterator[tuple[int, str, float]]:
        yield from [(1, "first", 0.0), (1, "again", 0.0), (2, "second", 0.0)]

    insert_rows(con, "INSERT OR IGNORE INTO t(a, b, c)", 3, rows())
    assert con.execute("SELECT a, b FROM t ORDER BY a").fetchall() == [(1, "first"), (2, "second")]


def test_a_failing_row_fails_its_statement() -> None:
    con = _table()
    con.execute("INSERT INTO t VALUES (5, 'x', 0)")
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(con, "INSERT INTO t(a, b, c)", 3, [(4, "y", 0.0), (5, "dup", 0.0)])


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 16, 37])
def test_flat_chunks_land_as_the_rows_would(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_rows, "CHUNK", 8)
    con = _table()
    statements: list[str] = []
    con.set_trace_callback(statements.append)
    rows = [(i, f"x{i}", i / 3) for i in range(n)]
    flat = [v for row in rows for v in row]
    size = sqlite_rows.rows_per_statement(con, 3)
    assert size == 8
    insert_flat(con, "INSERT INTO t(a, b, c)", 3, chunk_rows(flat, 3, size))
    assert con.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall() == rows
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == n // 8 + bin(n % 8).count("1")


@pytest.mark.parametrize("n", [1, 7, 8, 9, 37])
def test_a_shared_column_is_bound_once_and_lands_in_every_row(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_rows, "CHUNK", 8)
    con = _table()
    statements: list[str] = []
    con.set_trace_callback(statements.append)
    rows = [(i, "shared", i / 3) for i in range(n)]
    size = sqlite_rows.rows_per_statement(con, 3)
    # Each chunk: the shared value (the head's first column) first, then its rows without it.
    chunks = (
        ["shared", *c] for c in chunk_rows([v for i in range(n) for v in (i, i / 3)], 2, size)
    )
    insert_flat(con, "INSERT INTO t(b, a, c)", 3, chunks, shared=True)
    assert con.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall() == rows
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == n // 8 + bin(n % 8).count("1")
