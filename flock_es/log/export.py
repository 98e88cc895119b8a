"""Export a run as JSON Lines, and import such a file into another database.

The file is self-describing and checks itself: a header line, one line per
event, and a trailer with the event count. A file cut short (no trailer, or a
count that does not match) or with a line that does not parse is refused as a
whole, so a half-imported run never appears in a database.

Example::

    n = export_run(Path("data/flock-es.db"), "r-2026...", Path("run.jsonl"))
    run_id, n = import_run(Path("run.jsonl"), Path("/tmp/colleague.db"))
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from flock_es.domain.events import SCHEMA_VERSION, Event, EventKind, ModelCalled, body_as
from flock_es.domain.upcast import upcast
from flock_es.domain.validate import check_body
from flock_es.domain.validation_text import first_problem
from flock_es.errors import DatabaseDamagedError, DatabaseError, ExportFormatError, OutputError
from flock_es.log.backends import DbRef, describe_db, is_postgres, open_reader, open_writer
from flock_es.log.event_rows import dumps
from flock_es.log.event_stream import append_streamed
from flock_es.log.ports import EventReader
from flock_es.log.schema import DB_SCHEMA_VERSION, check_database, damaged_message
from flock_es.redaction import redact

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "IMPORT_CHUNK",
    "PROGRESS_EVERY",
    "ImportProgress",
    "counted",
    "export_run",
    "export_to_file",
    "import_run",
    "iter_export",
    "read_export",
    "scan_export",
]

FORMAT = "flock-es-export"
FORMAT_VERSION = 1
IMPORT_CHUNK = 2_000
"""Events an import hands its writer at a time."""
PROGRESS_EVERY = 20_000
"""Events between two calls of an import's ``progress``."""

ImportProgress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)`` of ``import_run``: phase ``checking`` (total from
the header, None if it has none), ``importing`` or ``verifying``; at most every
``PROGRESS_EVERY`` events, and once at each phase's end. An export's
(``export_run``) has one phase, ``exporting``, its total the run's events."""


class _Checked:
    """A run's events as they are read, checked against other access paths before
    they leave: seqs strictly increasing, the last one the run's last seq, the count
    the ``runs`` read model's, the first event ``run.started``. A damaged b-tree that
    ends a scan early is caught here instead of exporting a silently short run.

    The events stream through (``iter_events``, a page at a time): an export held
    the whole run, 432 MB of a 520,000-event run of workload (b) (issue 14). What
    only the end can show (the count, the last seq) is checked there: the caller's
    file is then discarded (``export_to_file``), and a stream gets no trailer, which
    an import refuses."""

    def __init__(self, reader: EventReader, run_id: str) -> None:
        self.reader, self.run_id = reader, run_id
        self.where = str(
            getattr(reader, "path", None) or getattr(reader, "location", "the database")
        )
        # The count and the last seq from one row (one commit wrote both): a run still
        # appending is exported as it stood then, not refused for what came after.
        row = reader.run_row(run_id)
        self.modelled = row is not None and row.last_seq is not None
        if row is not None and row.last_seq is not None:
            self.last, self.count = row.last_seq, row.events
        else:  # no read-model row (never seen): the count comes from a read
            self.last = reader.last_seq(run_id)
            self.count = sum(1 for _ in reader.iter_events(run_id, until=self.last))

    def events(self) -> Iterator[Event]:
        n, prev = 0, 0
        for e in self.reader.iter_events(self.run_id, until=self.last):
            seq = e.seq or 0
            if n == 0 and e.kind is not EventKind.RUN_STARTED:
                self._damaged("the run does not start with run.started")
            if seq <= prev:
                self._damaged("event seqs out of order")
            n, prev = n + 1, seq
            yield e
        problems = []
        if n and prev != self.last:
            problems.append(f"the events read end at seq {prev}, the run at seq {self.last}")
        if n != self.count:
            source = "the runs table says" if self.modelled else "the run had"
            problems.append(f"read {n} events, {source} {self.count}")
        if problems:
            self._damaged("; ".join(problems))

    def _damaged(self, what: str) -> None:
        raise DatabaseDamagedError(damaged_message(self.where, what))


def _lines(reader: EventReader, run_id: str, progress: ImportProgress | None) -> Iterator[str]:
    checked = _Checked(reader, run_id)
    yield dumps(
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "event_schema": SCHEMA_VERSION,
            "db_schema": DB_SCHEMA_VERSION,
            "run_id": run_id,
            "events": checked.count,
        }
    )
    for e in counted(checked.events(), "exporting", checked.count, progress):
        body = e.body
        if e.kind is EventKind.MODEL_CALLED:
            # Recorded requests are already redacted; an export leaves the machine, so again.
            body = dict(body, request=redact(body_as(e, ModelCalled)["request"]))
        yield dumps(
            {
                "seq": e.seq,
                "run_id": e.run_id,
                "kind": e.kind.value,
                "ts": e.ts,
                "v": e.v,
                "body": body,
            }
        )
    yield dumps({"end": True, "events": checked.count})


def export_run(
    reader: EventReader, run_id: str, out: IO[str], progress: ImportProgress | None = None
) -> int:
    """Write ``run_id``'s events to ``out`` as JSON Lines; returns the number of events.
    ``progress`` hears how far it has come (``ImportProgress``, phase ``exporting``)."""
    n = -2
    for line in _lines(reader, run_id, progress):
        out.write(line + "\n")
        n += 1
    return n


def export_to_file(
    reader: EventReader, run_id: str, output: Path, progress: ImportProgress | None = None
) -> int:
    """Write the export to ``output`` atomically (``.part`` then rename); nothing is left
    behind on failure. Returns the number of events."""
    if output.is_dir():
        raise OutputError(f"cannot write the export to {output}: it is a directory")
    if not output.parent.is_dir():
        raise OutputError(f"cannot write the export to {output}: no directory {output.parent}")
    tmp = output.with_name(output.name + ".part")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            n = export_run(reader, run_id, f, progress)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(output)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(f"cannot write the export to {output}: {exc.strerror or exc}") from None
    except BaseException:
        _discard(tmp)
        raise
    return n


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # e.g. a read-only directory: nothing was created
        tmp.unlink(missing_ok=True)


def _bad(path: Path, lineno: int, what: str) -> ExportFormatError:
    return ExportFormatError(f"{path}:{lineno}: {what}")


def _objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's lines as JSON objects, with their line numbers (blank lines skipped)."""
    if not path.is_file():
        raise ExportFormatError(f"{path}: no such export file")
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise _bad(path, lineno, f"not valid JSON ({exc.msg}); truncated?") from None
                if not isinstance(obj, dict):
                    raise _bad(path, lineno, "expected a JSON object")
                yield lineno, obj
    except UnicodeDecodeError:
        raise ExportFormatError(f"{path}: not a flock-es export (binary data)") from None


def _events(path: Path) -> Iterator[tuple[dict[str, Any], int, dict[str, Any]]]:
    """(header, line number, object) of each event line, checked as they come: the
    header first, seqs increasing, nothing after the end marker; the trailer last,
    as (header, 0, trailer). Raises ExportFormatError naming the line."""
    header: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    last_seq = 0
    for lineno, obj in _objects(path):
        if trailer is not None:
            raise _bad(path, lineno, "data after the end marker")
        if header is None:
            if obj.get("format") != FORMAT:
                raise _bad(path, lineno, "not a flock-es export (no header line)")
            if int(obj.get("version", 0)) > FORMAT_VERSION:
                raise _bad(path, lineno, "written by a newer flock-es; upgrade flock-es")
            header = obj
        elif obj.get("end") is True:
            trailer = obj
        else:
            seq = obj.get("seq")
            if not isinstance(seq, int) or seq <= last_seq:
                raise _bad(path, lineno, f"seq {seq!r} does not follow seq {last_seq}")
            last_seq = seq
            yield header, lineno, obj
    if header is None:
        raise ExportFormatError(f"{path}: empty file, not a flock-es export")
    if trailer is not None:
        yield header, 0, trailer


def scan_export(path: Path, progress: ImportProgress | None = None) -> tuple[str, int]:
    """Check a whole export without holding it: its run id and number of events.
    Raises ExportFormatError naming the line (``import`` writes nothing before this)."""
    n, run_id, ended, first = 0, "", False, None
    for header, lineno, obj in _events(path):
        run_id = str(header.get("run_id"))
        if progress is not None and n % PROGRESS_EVERY == 0:
            total = header.get("events")
            progress("checking", n, total if isinstance(total, int) else None)
        if not lineno:
            ended = obj.get("events") == n and header.get("events") == n
            if not ended:
                raise ExportFormatError(
                    f"{path}: truncated or edited export: {n} events, "
                    f"header says {header.get('events')}"
                )
            continue
        kind = _event(path, lineno, obj, run_id).kind
        first = first or kind
        n += 1
    if not ended:
        raise ExportFormatError(f"{path}: truncated export (no end marker after {n} events)")
    if first is not EventKind.RUN_STARTED:
        raise ExportFormatError(f"{path}: the export does not start with run.started")
    if progress is not None:
        progress("checking", n, n)
    return run_id, n


def counted(
    events: Iterator[Event], phase: str, total: int | None, progress: ImportProgress | None
) -> Iterator[Event]:
    """``events``, calling ``progress(phase, done, total)`` on the way: at the first,
    every ``PROGRESS_EVERY`` events and after the last (see ``ImportProgress``)."""
    if progress is None:
        yield from events
        return
    done = 0
    for e in events:
        if done % PROGRESS_EVERY == 0:
            progress(phase, done, total)
        done += 1
        yield e
    progress(phase, done, total)


def iter_export(path: Path, run_id: str) -> Iterator[Event]:
    """The events of an export ``scan_export`` passed, one at a time."""
    for _, lineno, obj in _events(path):
        if lineno:
            yield _event(path, lineno, obj, run_id)


def read_export(path: Path) -> tuple[str, list[Event]]:
    """Parse and validate an export file; raises ExportFormatError naming the line."""
    run_id, _ = scan_export(path)
    return run_id, list(iter_export(path, run_id))


def _event(path: Path, lineno: int, obj: dict[str, Any], run_id: str) -> Event:
    try:
        kind = EventKind(obj["kind"])
    except (KeyError, ValueError):
        raise _bad(path, lineno, f"unknown event kind {obj.get('kind')!r}") from None
    if obj.get("run_id") != run_id:
        raise _bad(path, lineno, f"event of run {obj.get('run_id')!r} in an export of {run_id}")
    body = obj.get("body")
    ts = obj.get("ts")
    v = obj.get("v", SCHEMA_VERSION)
    if not isinstance(body, dict) or not isinstance(ts, int | float) or not isinstance(v, int):
        raise _bad(path, lineno, "an event needs a body object, a numeric ts and a version")
    if v > SCHEMA_VERSION:
        raise _bad(path, lineno, f"event schema {v} is newer than this flock-es ({SCHEMA_VERSION})")
    body, v = upcast(kind, v, body)
    try:
        check_body(kind, body)
    except ValidationError as exc:
        raise _bad(path, lineno, f"{kind.value} body: {first_problem(exc, '')}") from None
    return Event(run_id=run_id, kind=kind, body=body, ts=float(ts), v=v)


def import_run(path: Path, db: DbRef, progress: ImportProgress | None = None) -> tuple[str, int]:
    """Load an export into ``db`` (created if needed) in one transaction.

    The file is read three times, never held: checked whole first (nothing is
    written unless all of it is sound), then streamed into one transaction, then
    compared with what the database reads back. ``progress`` hears of each phase.
    """
    run_id, n = scan_export(path, progress)
    if is_postgres(db) or check_database(Path(db), must_exist=False):
        try:
            reader = open_reader(db)
        except DatabaseError:
            reader = None  # a PostgreSQL database without the schema yet: the writer makes it
        if reader is not None:
            with reader:
                if reader.first_seq(run_id):
                    raise DatabaseError(f"run {run_id} is already in {describe_db(db)}")
    asyncio.run(_append(db, counted(iter_export(path, run_id), "importing", n, progress)))
    with open_reader(db) as reader:  # read back what was written: same count, same kinds
        back = counted(reader.iter_events(run_id), "verifying", n, progress)
        pairs = itertools.zip_longest(back, iter_export(path, run_id))
        if any(a is None or b is None or (a.kind, a.body) != (b.kind, b.body) for a, b in pairs):
            raise DatabaseDamagedError(
                damaged_message(
                    describe_db(db), f"run {run_id} reads back differently than it was imported"
                )
            )
    return run_id, n


async def _append(db: DbRef, events: Iterator[Event]) -> None:
    """``events`` committed in one transaction, streamed in chunks where the writer
    takes a stream (``EventStream``): an export of 100,000 artifacts is not held."""
    writer = await open_writer(db)
    try:
        await append_streamed(writer, events, IMPORT_CHUNK)
    finally:
        await writer.close()
