"""Many rows in few statements: ``INSERT ... VALUES (...), (...), ...`` in chunks.

``executemany`` steps SQLite once per row, and CPython's ``sqlite3`` releases
the GIL around each step and takes it back after. The writer thread then waits
for the GIL once per row, and while the event loop's thread is busy each wait
can last a switch interval (5 ms): the two threads took turns instead of
overlapping, and the writer's part of a run cost as much as the rest of it
(issue 14). One statement per chunk of rows is one step and one wait for the
whole chunk; SQLite also does less per row (one statement, bound once).

Chunks are ``CHUNK`` rows, and a last short chunk is split into powers of two,
so a connection prepares a handful of statement texts per table (the
``sqlite3`` statement cache keeps them) instead of one per commit size. Rows
may come from an iterator: at most one chunk of them is held at a time.

Example::

    insert_rows(con, "INSERT INTO t(a, b)", 2, [(1, "x"), (2, "y")])
    insert_flat(con, "INSERT INTO t(a, b)", 2, [[1, "x", 2, "y"]])  # the same, flat

``insert_flat`` takes the values of a chunk's rows as one flat list, as a
statement binds them: the writer's hot path builds them so, with no tuple per
row and no second pass to flatten (issue 14: the writer thread's Python work
holds the GIL the event loop's thread needs).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import chain, islice
from typing import Any

__all__ = ["CHUNK", "chunk_rows", "insert_flat", "insert_rows", "rows_per_statement"]

CHUNK = 1024
"""Rows per statement (a power of two; SQLite >= 3.32 allows 32,766 parameters). Not
fewer: each statement ends in the writer's thread taking the GIL back from the busy
loop, and with 128 rows a statement workload (b) ran 6-11% slower than with 1,024
(``bench/ab_b.py``, interleaved pairs), though it took ~2% fewer instructions. The
wide statements are compiled on their first use, on the run's path (a few ms, once
per size and table): compiling them all when the writer opens (``writer.WARM_MAX``)
made every writer's opening take 30 ms instead of 12."""


@lru_cache(maxsize=256)
def _statement(head: str, ncols: int, rows: int, shared: bool = False) -> str:
    """``rows`` rows of ``ncols`` values; ``shared``: the first column is ``?1`` in every
    row. The other values stay plain ``?``, numbered on from there: SQLite looks up each
    explicitly numbered one among those seen before, and a statement numbered
    throughout compiled four times slower (128 rows)."""
    marks = "?1," + ",".join("?" * (ncols - 1)) if shared else ",".join("?" * ncols)
    return f"{head} VALUES {','.join([f'({marks})'] * rows)}"


def _limit(conn: sqlite3.Connection, ncols: int) -> int:
    """Rows per statement on ``conn`` (older SQLite allows only 999 parameters)."""
    per = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // ncols
    size = CHUNK
    while size > per and size > 1:
        size //= 2
    return size


def insert_rows(
    conn: sqlite3.Connection, head: str, ncols: int, rows: Iterable[tuple[Any, ...]]
) -> None:
    """Run ``head VALUES (...), ...`` over ``rows`` (tuples of ``ncols`` values) in chunks."""
    size = _limit(conn, ncols)
    it = iter(rows)
    while True:
        chunk = list(islice(it, size))
        n = len(chunk)
        if n == 0:
            return
        start = 0
        part = size
        while start < n:  # a full chunk in one go; a short one in powers of two
            while part > n - start:
                part //= 2
            flat = list(chain.from_iterable(chunk[start : start + part]))
            conn.execute(_statement(head, ncols, part), flat)
            start += part
        if n < size:
            return


def rows_per_statement(conn: sqlite3.Connection, ncols: int) -> int:
    """The most rows one statement of ``ncols`` columns takes on ``conn`` (a chunk)."""
    return _limit(conn, ncols)


def insert_flat(
    conn: sqlite3.Connection,
    head: str,
    ncols: int,
    chunks: Iterable[list[Any]],
    shared: bool = False,
) -> None:
    """``insert_rows`` over flat chunks: each the values of at most
    ``rows_per_statement(conn, ncols)`` rows, row after row.

    ``shared``: every row of a chunk has the same value in ``head``'s first column; the
    chunk starts with it, and its rows leave it out. It is bound once per statement,
    not once per row (the writer's run id: issue 14).
    """
    size = _limit(conn, ncols)
    skip, width = (1, ncols - 1) if shared else (0, ncols)
    for flat in chunks:
        n = (len(flat) - skip) // width
        if n == size:
            conn.execute(_statement(head, ncols, size, shared), flat)
            continue
        start = 0
        part = size
        while start < n:  # a short chunk in powers of two
            while part > n - start:
                part //= 2
            values = flat[skip + start * width : skip + (start + part) * width]
            conn.execute(_statement(head, ncols, part, shared), flat[:skip] + values)
            start += part


def chunk_rows(flat: list[Any], ncols: int, size: int) -> Iterator[list[Any]]:
    """A flat list of rows in chunks of at most ``size`` rows (for ``insert_flat``)."""
    step = ncols * size
    if len(flat) <= step:
        yield flat
        return
    for i in range(0, len(flat), step):
        yield flat[i : i + step]
