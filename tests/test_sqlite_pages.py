"""The page reader salvage uses reads back what SQLite wrote: every value type,
rows that spill onto overflow pages, page sizes from 512 bytes to 64 KiB, and a
file whose b-tree interior is gone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from flock_es.log.sqlite_pages import PageReader, Value

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=3000),
    st.binary(max_size=3000),
)
rows = st.lists(st.tuples(values, values, values), min_size=1, max_size=40)


def write(path: Path, page_size: int, data: list[tuple[Value, Value, Value]]) -> None:
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA page_size = {page_size}")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, c)")
    con.executemany("INSERT INTO t (a, b, c) VALUES (?, ?, ?)", data)
    con.commit()
    con.close()


def read(path: Path) -> dict[int, list[Value]]:
    with path.open("rb") as f:
        pages = PageReader(f)
        got = {rowid: vals for _, _, rowid, vals in pages.rows() if len(vals) == 4}
        for page, offset, rowid, vals in pages.rows():  # row_at finds each cell again
            assert pages.row_at(page, offset) == (rowid, vals)
    return got


@settings(max_examples=40, deadline=None)
@given(data=rows, page_size=st.sampled_from([512, 1024, 4096, 65536]))
def test_every_row_reads_back_as_sqlite_wrote_it(
    data: list[tuple[Value, Value, Value]], page_size: int, tmp_path_factory: object
) -> None:
    path = tmp_path_factory.mktemp("pages") / "t.db"  # type: ignore[attr-defined]
    write(path, page_size, data)
    got = read(path)
    assert got == {i + 1: [None, *row] for i, row in enumerate(data)}


def test_rows_below_a_lost_interior_page_still_read(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    data: list[tuple[Value, Value, Value]] = [(n, "x" * 200, n * 0.5) for n in range(5000)]
    write(path, 1024, data)
    con = sqlite3.connect(path)
    interior = [
        p
        for (p,) in con.execute("SELECT pageno FROM dbstat WHERE name='t' AND pagetype='internal'")
    ]
    con.close()
    raw = bytearray(path.read_bytes())
    for p in interior:  # the root included: SQLite reaches none of the rows now
        raw[(p - 1) * 1024 : p * 1024] = bytes(1024)
    path.write_bytes(bytes(raw))
    con = sqlite3.connect(path)
    try:
        con.execute("SELECT count(*) FROM t").fetchone()
        raise AssertionError("SQLite still read the table")
    except sqlite3.DatabaseError:
        pass
    finally:
        con.close()
    assert read(path) == {i + 1: [None, *row] for i, row in enumerate(data)}
