"""Rows read straight off the pages of a SQLite file, for salvage.

SQLite finds a row by walking its table's b-tree from the root. When an
interior page is lost, every row below it is out of reach although its leaf
page is intact: a file cut short loses the interior pages a grown table
allocated last (the events table of a two-run log had its interior pages at
705 and 706 of 961), and so all of its rows. This module reads every page of
the file and parses the table-leaf cells it finds, following their overflow
chains, as SQLite's file format describes (sqlite.org/fileformat2.html). A
cell whose overflow chain leaves the file, or loops, is skipped.

It knows nothing of flock-es's tables: the caller picks its rows by shape.
The main file only; committed pages still in the WAL are not seen here.

Example::

    with open("damaged.db", "rb") as f:
        pages = PageReader(f)
        for page, offset, rowid, values in pages.rows():
            again = pages.row_at(page, offset)
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["PageReader", "Value"]

Value = int | float | str | bytes | None

_TABLE_LEAF = 0x0D
_HEADER = 100  # the file header, before page 1's own


class _File:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        f.seek(0)
        head = f.read(_HEADER)
        if len(head) < _HEADER or not head.startswith(b"SQLite format 3\x00"):
            raise ValueError("not a SQLite file")
        size = struct.unpack(">H", head[16:18])[0]
        self.page_size = 65536 if size == 1 else size
        self.usable = self.page_size - head[20]
        self.pages = os.fstat(f.fileno()).st_size // self.page_size
        self._last: tuple[int, bytes | None] = (0, None)

    def page(self, n: int) -> bytes | None:
        if n == self._last[0]:  # the rows of a run sit side by side: read once for all
            return self._last[1]
        if not 1 <= n <= self.pages:
            return None
        self.f.seek((n - 1) * self.page_size)
        data = self.f.read(self.page_size)
        page = data if len(data) == self.page_size else None
        self._last = (n, page)
        return page


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = 0
    for k in range(8):
        c = b[i + k]
        v = (v << 7) | (c & 0x7F)
        if c < 0x80:
            return v, i + k + 1
    return (v << 8) | b[i + 8], i + 9


def _payload(db: _File, page: bytes, at: int) -> tuple[int, bytes] | None:
    """The rowid and whole payload of the table-leaf cell at ``at``, or None."""
    size, i = _varint(page, at)
    rowid, i = _varint(page, i)
    u = db.usable
    x, m = u - 35, ((u - 12) * 32 // 255) - 23
    if size <= x:
        return rowid, page[i : i + size]
    k = m + (size - m) % (u - 4)
    local = k if k <= x else m
    parts, nxt = [page[i : i + local]], struct.unpack(">I", page[i + local : i + local + 4])[0]
    got, seen = local, set()
    while got < size:
        overflow = db.page(nxt) if nxt not in seen else None
        if overflow is None:
            return None  # the chain leaves the file, or loops: the row is lost
        seen.add(nxt)
        take = min(u - 4, size - got)
        parts.append(overflow[4 : 4 + take])
        got += take
        nxt = struct.unpack(">I", overflow[:4])[0]
    return rowid, b"".join(parts)


def _values(record: bytes) -> list[Value]:
    head, i = _varint(record, 0)
    types = []
    while i < head:
        t, i = _varint(record, i)
        types.append(t)
    out: list[Value] = []
    at = head
    for t in types:
        if t == 0:
            out.append(None)
        elif t in (8, 9):
            out.append(t - 8)
        elif t <= 6:
            n = (0, 1, 2, 3, 4, 6, 8)[t]
            out.append(int.from_bytes(record[at : at + n], "big", signed=True))
            at += n
        elif t == 7:
            out.append(struct.unpack(">d", record[at : at + 8])[0])
            at += 8
        else:
            n = (t - 12) // 2 if t % 2 == 0 else (t - 13) // 2
            raw = record[at : at + n]
            out.append(raw if t % 2 == 0 else raw.decode("utf-8"))
            at += n
        if at > len(record):
            raise ValueError("a record longer than its payload")
    return out


def _cells(page: bytes, n: int) -> Iterator[int]:
    base = _HEADER if n == 1 else 0
    if page[base] != _TABLE_LEAF:
        return
    count = struct.unpack(">H", page[base + 3 : base + 5])[0]
    for c in range(count):
        at = base + 8 + 2 * c
        yield struct.unpack(">H", page[at : at + 2])[0]


class PageReader:
    """The table-leaf rows of an open SQLite file, read off its pages."""

    def __init__(self, f: BinaryIO) -> None:
        self._db = _File(f)

    @property
    def page_count(self) -> int:
        """Whole pages in the file (a last partial page is not read)."""
        return self._db.pages

    def rows(self) -> Iterator[tuple[int, int, int, list[Value]]]:
        """(page, cell offset, rowid, values) of every table-leaf cell that parses."""
        db = self._db
        for n in range(1, db.pages + 1):
            page = db.page(n)
            if page is None:
                continue
            try:
                offsets = list(_cells(page, n))
            except (IndexError, struct.error):
                continue
            for at in offsets:
                row = self._parse(page, at)
                if row is not None:
                    yield n, at, row[0], row[1]

    def row_at(self, page_no: int, offset: int) -> tuple[int, list[Value]] | None:
        """The rowid and values of the cell at ``offset`` of page ``page_no``, or None."""
        page = self._db.page(page_no)
        return None if page is None else self._parse(page, offset)

    def _parse(self, page: bytes, at: int) -> tuple[int, list[Value]] | None:
        try:
            got = _payload(self._db, page, at)
            return None if got is None else (got[0], _values(got[1]))
        except (IndexError, ValueError, struct.error):
            return None  # a cell damaged in place (UnicodeDecodeError is a ValueError)
