"""Salvage: copy what can still be read of a damaged SQLite log into a new database.

Events are found two ways. Off the pages: every table-leaf cell of the file
shaped like an events row (``sqlite_pages``), which finds rows whose b-tree
path is lost, as in a file cut short. Through SQL: the seqs the pages did not
give, read by ranges (halved down to single rows where a range fails), which
finds the rows still in the WAL. A row whose body does not parse is lost.

Each run is then copied as the longest prefix of its events with no hole in
it. The log is append-only, so a prefix of a run is a state the run passed
through, and ``flock-es resume`` goes on from there without paying again for
any call the prefix recorded. Events after a hole are left out: the fold
cannot know what the lost ones said. The paid answers and tool results among
them are kept aside (``salvaged_answers``) for the resume to serve to the same
calls: no call paid again, no tool run again, for what still reads.

A hole counts against a run unless the run's index (``events_run``) still
reads and does not list it. Where a run is cut, its last unit goes too: the
lost row may have been part of it, and a unit is all or nothing. Every event
of a unit carries one timestamp (``Executor.completion``), so that unit is the
run of equal timestamps at the prefix's end.

The damaged file is only read. SQLite alone: a PostgreSQL server has its own
recovery.

Example::

    report = salvage(Path("damaged.db"), Path("recovered.db"))
    for run in report.runs:
        print(run.run_id, run.kept, run.read, run.cut_at)
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from flock_es.domain.events import Event, EventKind
from flock_es.errors import DatabaseDamagedError, DatabaseError, DiskFullError
from flock_es.log.backends import open_writer
from flock_es.log.event_stream import append_streamed
from flock_es.log.reader import row_to_event
from flock_es.log.salvaged_answers import Kept, keep_answers
from flock_es.log.schema import file_uri
from flock_es.log.sqlite_pages import PageReader, Value

__all__ = [
    "EVENTS_SHOWN",
    "PAGES_SHOWN",
    "READ_CHUNK",
    "SalvageProgress",
    "SalvageReport",
    "SalvagedRun",
    "salvage",
]

READ_CHUNK = 4_096
"""Seqs read through SQL at a time, and events handed to the new log at a time."""
PAGES_SHOWN = 5_000
"""Pages read between two calls of ``progress``."""
EVENTS_SHOWN = 20_000
"""Events written between two calls of ``progress``."""

_COLS = "SELECT seq, run_id, kind, ts, v, body FROM events NOT INDEXED"
_KINDS = frozenset(k.value for k in EventKind)
# What is kept of a run past its cut: what the resume would otherwise pay for or redo.
_KEPT_KINDS = frozenset({EventKind.MODEL_CALLED, EventKind.TOOL_CALLED})

SalvageProgress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: ``reading`` (pages of the file), then ``writing``
(events copied, of those that read)."""


@dataclass(slots=True)
class SalvagedRun:
    """One run of a salvage: ``read`` of its events were readable, ``kept`` were
    copied; ``cut_at`` is the first seq left out, None when the run is whole."""

    run_id: str
    seqs: list[int] = field(default_factory=list, repr=False)
    cut_at: int | None = None
    kept: int = 0
    finished: bool = False
    answers: int = 0
    """Paid answers read after the cut, kept for the resume (``salvaged_answers``)."""
    tools: int = 0
    """Tool results read after the cut, kept for the resume likewise."""

    @property
    def read(self) -> int:
        return len(self.seqs)

    @property
    def copied(self) -> int:
        """How many of the run's events go to the new log: those before the cut."""
        return self.read if self.cut_at is None else bisect.bisect_left(self.seqs, self.cut_at)


@dataclass(slots=True)
class SalvageReport:
    """What a salvage found: the highest seq, how many seqs are lost, each run
    copied, and the runs whose ``run.started`` is lost (not copied)."""

    last_seq: int = 0
    lost: int = 0
    runs: list[SalvagedRun] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def salvage(src: Path, dst: Path, progress: SalvageProgress | None = None) -> SalvageReport:
    """Copy every run that can be read from the damaged log ``src`` into a new ``dst``."""
    if dst.exists():
        raise DatabaseError(f"{dst} already exists: salvage writes a new database")
    if not src.is_file():
        raise DatabaseError(f"{src} is not a file")
    with _Log(src) as log:
        report = log.scan(progress)
        if not report.runs:
            raise DatabaseDamagedError(f"nothing in {src} can be salvaged: no run's start reads")
        try:
            asyncio.run(log.copy(dst, report, progress))
        except DiskFullError as exc:
            _discard(dst)
            raise DatabaseError(
                f"the disk holding {dst} is full ({exc.detail}); the copy was removed: "
                f"salvage to a disk with room for it (up to {src.stat().st_size:,} bytes)"
            ) from None
        except BaseException:
            _discard(dst)
            raise
    return report


def _discard(dst: Path) -> None:
    """A copy cut short is no copy: none of it is left."""
    for part in (
        dst,
        *(dst.with_name(dst.name + x) for x in ("-wal", "-shm", "-verified")),
    ):
        part.unlink(missing_ok=True)


def _event(seq: int, values: list[Value]) -> Event | None:
    """The event of a row of the events table (seq, run_id, kind, ts, v, task_id,
    body), or None for a row of another shape or one whose body does not parse."""
    if len(values) != 7 or values[0] is not None or values[2] not in _KINDS:
        return None
    run_id, kind, ts, v, body = values[1], values[2], values[3], values[4], values[6]
    if not (isinstance(run_id, str) and isinstance(ts, float | int) and isinstance(v, int)):
        return None
    if not isinstance(body, str):
        return None
    try:
        return row_to_event((seq, run_id, str(kind), float(ts), v, body))
    except ValueError:
        return None


class _Log:
    """The damaged file, open for reading: through SQL, and page by page."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self.con = _connect(src)
        self.file: BinaryIO = src.open("rb")
        try:
            self.pages: PageReader | None = PageReader(self.file)
        except ValueError:
            self.pages = None  # the header is gone: SQL may still read what the WAL holds
        # Each run's last seq by its read-model row (a tail lost with the file's end).
        self.ends: dict[str, int] = {}
        # Where each event that reads is: page << 16 | cell offset, or -1 for SQL (an
        # int, not a tuple: a log of millions of events keeps one per event).
        self.at: dict[int, int] = {}
        # The seqs that do not read, once scanned: in order, and as a set.
        self.lost: list[int] = []
        self.lost_set: set[int] = set()
        self.written = 0  # events handed to the new log

    def __enter__(self) -> _Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()
        self.file.close()

    def scan(self, progress: SalvageProgress | None) -> SalvageReport:
        runs: dict[str, SalvagedRun] = {}
        for e in self._found(progress):
            assert e.seq is not None
            if e.seq not in self.at:
                runs.setdefault(e.run_id, SalvagedRun(e.run_id)).seqs.append(e.seq)
        report = SalvageReport(last_seq=self._highest())
        report.lost = report.last_seq - len(self.at)
        self.lost_set = set(range(1, report.last_seq + 1)).difference(self.at)
        self.lost = sorted(self.lost_set)
        for run in runs.values():
            run.seqs.sort()
            self._place(run, report)
        return report

    def _highest(self) -> int:
        """The highest seq an event that reads, or a runs row, names."""
        return max(max(self.at, default=0), max(self.ends.values(), default=0))

    def _found(self, progress: SalvageProgress | None) -> Iterator[Event]:
        """Every event that reads, off the pages first, then through SQL; each one is
        noted in ``at`` right after it is yielded."""
        if self.pages is not None:
            shown = 0
            for page, offset, seq, values in self.pages.rows():
                e = _event(seq, values)
                if e is not None:
                    yield e
                    self.at.setdefault(seq, page << 16 | offset)
                else:
                    self._note_end(values)
                if progress is not None and page >= shown + PAGES_SHOWN:
                    shown = page
                    progress("reading", page, self.pages.page_count)
        with contextlib.suppress(sqlite3.DatabaseError):
            for values in self.con.execute("SELECT * FROM runs"):
                self._note_end(list(values))
        top = max(_last_seq(self.con), self._highest())
        lo = 1
        while lo <= top:  # the seqs the pages did not give, in ranges
            while lo <= top and lo in self.at:
                lo += 1
            hi = lo
            while hi < top and hi + 1 not in self.at and hi + 1 - lo < READ_CHUNK:
                hi += 1
            if lo <= top:
                for e in _readable(self.con, lo, hi):
                    yield e
                    self.at[e.seq or 0] = -1
            lo = hi + 1

    def _note_end(self, values: list[Value]) -> None:
        """A row of the runs table (run_id, ..., first_seq, last_seq, events, ...):
        the run's last seq, the highest of any copy of it (an old page may hold one)."""
        if len(values) < 11 or not isinstance(values[0], str):
            return
        last = values[9]
        if isinstance(last, int) and last > self.ends.get(values[0], 0):
            self.ends[values[0]] = last

    def _place(self, run: SalvagedRun, report: SalvageReport) -> None:
        first = self.event(run.seqs[0])
        if first is None or first.kind is not EventKind.RUN_STARTED:
            report.dropped.append(run.run_id)  # its start is lost: nothing to fold from
            return
        hole = self._hole(run)
        if hole is not None and not (hole > run.seqs[-1] and self._finished(run)):
            run.cut_at = self._unit_start(run, hole)
        report.runs.append(run)

    def _finished(self, run: SalvagedRun) -> bool:
        """Whether the run's last event that reads is its ``run.finished``: a hole after
        it leaves a state the run passed through, whole (a resume that owed timed
        work may have gone on, and is the one thing lost)."""
        last = self.event(run.seqs[-1])
        return last is not None and last.kind is EventKind.RUN_FINISHED

    def _hole(self, run: SalvagedRun) -> int | None:
        """The first lost seq after the run's start that may have been the run's.

        The run's index (``events_run``) lists its seqs: one scan of it finds the
        first that is lost. Where the scan fails (the index is damaged too), any
        lost seq from there on may have been the run's."""
        after, lost = run.seqs[0], self.lost
        try:
            for (seq,) in self.con.execute(
                "SELECT seq FROM events INDEXED BY events_run"
                " WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run.run_id, after),
            ):
                if seq in self.lost_set:
                    return int(seq)
                after = seq
        except sqlite3.DatabaseError:
            i = bisect.bisect_right(lost, after)
            return lost[i] if i < len(lost) else None
        return None

    def _unit_start(self, run: SalvagedRun, hole: int) -> int:
        """The first seq left out: the hole, or the start of the unit that ends there."""
        ts: float | None = None
        cut = hole
        for seq in reversed(run.seqs[1 : bisect.bisect_left(run.seqs, hole)]):
            e = self.event(seq)  # run.started (seqs[0]) stays: a run is never cut before it
            if e is None or (ts is not None and e.ts != ts):
                break
            ts, cut = e.ts, seq
        return cut

    def event(self, seq: int) -> Event | None:
        where = self.at.get(seq, -1)
        if where >= 0 and self.pages is not None:
            row = self.pages.row_at(where >> 16, where & 0xFFFF)
            return None if row is None else _event(row[0], row[1])
        return next(_readable(self.con, seq, seq), None)

    async def copy(
        self, dst: Path, report: SalvageReport, progress: SalvageProgress | None
    ) -> None:
        writer = await open_writer(dst)
        total = sum(r.copied for r in report.runs)
        try:
            for run in report.runs:
                await append_streamed(writer, self._kept(run, progress, total), READ_CHUNK)
        finally:
            await writer.close()
        if progress is not None:
            progress("writing", self.written, total)
        for run in report.runs:
            if run.copied < run.read:  # events read past the cut (a whole run has none)
                run.answers, run.tools = keep_answers(dst, self._paid_after_cut(run))

    def _paid_after_cut(self, run: SalvagedRun) -> Iterator[Kept]:
        for seq in run.seqs[run.copied :]:
            e = self.event(seq)
            if e is not None and e.kind in _KEPT_KINDS:
                yield run.run_id, e.kind, e.body

    def _kept(
        self, run: SalvagedRun, progress: SalvageProgress | None, total: int
    ) -> Iterator[Event]:
        """The run's events up to its cut, as new ones (the new log numbers them)."""
        for seq in run.seqs[: run.copied]:
            e = self.event(seq)
            if e is None:  # it read a moment ago
                raise DatabaseDamagedError(f"{self.src} changed while it was salvaged")
            run.kept += 1
            self.written += 1
            if progress is not None and self.written % EVENTS_SHOWN == 0:
                progress("writing", self.written, total)
            run.finished = run.finished or e.kind is EventKind.RUN_FINISHED
            yield Event(run_id=e.run_id, kind=e.kind, body=e.body, ts=e.ts, v=e.v)


def _connect(src: Path) -> sqlite3.Connection:
    con = sqlite3.connect(file_uri(src, "mode=ro"), uri=True)
    # Loads a schema whose other tables' root pages are lost (a file cut short).
    with contextlib.suppress(sqlite3.DatabaseError):
        con.execute("PRAGMA writable_schema = ON")
    return con


def _last_seq(con: sqlite3.Connection) -> int:
    """The highest seq SQL knows of, from the b-tree's right edge (0 if that is lost)."""
    try:
        row = con.execute("SELECT max(seq) FROM events").fetchone()
    except sqlite3.DatabaseError:
        return 0
    return int(row[0] or 0)


def _readable(con: sqlite3.Connection, lo: int, hi: int) -> Iterator[Event]:
    """The events of seqs ``lo`` to ``hi`` (inclusive) that read and decode through
    SQL; a range that fails is halved down to single rows."""
    try:
        rows = con.execute(f"{_COLS} WHERE seq BETWEEN ? AND ? ORDER BY seq", (lo, hi)).fetchall()
        events = [row_to_event(r) for r in rows]
    except (sqlite3.DatabaseError, ValueError):
        if lo < hi:
            mid = (lo + hi) // 2
            yield from _readable(con, lo, mid)
            yield from _readable(con, mid + 1, hi)
        return
    yield from (e for e in events if e is not None)
