"""Read-only access to the log, for the CLI, resume, replay and the TUI.

Readers open their own read-only connection, so any number of them can follow
a live run while its writer commits. ``changed()`` is the cheap poll: SQLite's
``PRAGMA data_version`` moves only when another connection committed.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic_core import from_json

from flock_es.domain.events import (
    Event,
    EventKind,
    ModelCalled,
    RunResumed,
    RunStarted,
    TaskFailed,
    body_field,
)
from flock_es.domain.upcast import upcast
from flock_es.errors import DatabaseError
from flock_es.log.body_paths import ANSWERED_ON, CALLED, TOOL_CALLED
from flock_es.log.integrity import verify as verify_db
from flock_es.log.ports import EventRow, Lease, RunRow
from flock_es.log.run_counters import COUNTERS_SINCE, STATS_SELECT, stats_of_row
from flock_es.log.run_lookup import RunLookup, events_query, prefix_pattern
from flock_es.log.schema import (
    BUSY_TIMEOUT_MS,
    READER_CHECK_SECONDS,
    check_database,
    read_uri,
    storage_error,
)

__all__ = ["EventRow", "LogReader", "RunRow", "row_to_event"]

_KINDS = {k.value: k for k in EventKind}
_PUBLISHED = EventKind.ARTIFACT_PUBLISHED
_EVENT_COLS = "seq, run_id, kind, ts, v, body"
# Below SQLite's default limit of host parameters in one statement (999 before 3.32).
_SEQS_PER_QUERY = 900


def _field(definition: type, name: str) -> str:
    """The SQLite JSON path of a body field, checked against its definition at import."""
    return f"json_extract(body, '$.{body_field(definition, name)}')"


_K = EventKind
_CALLED = f"kind='{_K.MODEL_CALLED}'"
_TOKENS_IN, _TOKENS_OUT = _field(ModelCalled, "tokens_in"), _field(ModelCalled, "tokens_out")
_COST, _ATTEMPT = _field(ModelCalled, "cost"), _field(ModelCalled, "attempt")
# Files before schema 9 only (``run_stats``): the whole log, aggregated.
_RUN_STATS = (
    "SELECT run_id,"
    f" count(DISTINCT CASE WHEN kind='{_K.TASK_SCHEDULED}' THEN task_id END),"
    f" count(DISTINCT CASE WHEN kind='{_K.TASK_COMPLETED}' THEN task_id END),"
    f" count(DISTINCT CASE WHEN kind='{_K.TASK_FAILED}'"
    f"   AND NOT {_field(TaskFailed, 'will_retry')} THEN task_id END),"
    f" sum({_CALLED}),"
    f" coalesce(sum(CASE WHEN {_CALLED} THEN {_TOKENS_IN} END), 0),"
    f" coalesce(sum(CASE WHEN {_CALLED} THEN {_TOKENS_OUT} END), 0),"
    f" coalesce(sum(CASE WHEN {_CALLED} THEN {_COST} END), 0),"
    f" sum({_CALLED} AND {_COST} IS NULL),"
    " max(ts),"
    f" sum(kind='{_K.MODEL_ATTEMPT}'),"
    f" sum({_CALLED} AND coalesce({_ATTEMPT}, 1) > 1)"
    " FROM events GROUP BY run_id"
)
# ``call_records``: json_extract reads a body only for the run's model.called rows
# (SQLite evaluates AND and OR left to right, and stops at the first that decides).
_SHOWN_CALLS = (
    f"(kind = '{TOOL_CALLED}' OR (kind = '{CALLED}'"
    f" AND coalesce(json_extract(body, '$.{ANSWERED_ON}'), 1) > 1))"
)
# run.resumed names the same fields as run.started: the last process that ran the run.
_LAST_PROCESS = (
    f"SELECT run_id, {_field(RunStarted, 'pid')}, {_field(RunResumed, 'host')} FROM events"
    f" WHERE kind IN ('{_K.RUN_STARTED}', '{_K.RUN_RESUMED}') ORDER BY seq"
)


def row_to_event(row: EventRow) -> Event | None:
    """The event of a stored row; None for a kind this flock-es does not know."""
    seq, run_id, kind, ts, v, body = row
    k = _KINDS.get(kind)
    if k is None:  # written by a newer flock-es with the same schema: skip, stay total
        return None
    # pydantic's Rust parser: about three times faster than json.loads on event bodies.
    current, v = upcast(k, v, from_json(body))
    # Positional: a call by keywords matches each name (every event read, replayed, folded).
    # An artifact's carries its body's size: what its view weighs (``payload_size``).
    return Event(run_id, k, current, ts, seq, v, len(body) if k is _PUBLISHED else 0)


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(method: _F) -> _F:
    """SQLite faults and unparsable bodies become one-line DatabaseErrors naming the file."""

    def translate(self: LogReader, exc: Exception) -> DatabaseError:
        return storage_error(self.path, exc)

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def gen(self: LogReader, *args: Any, **kw: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kw)
            except (sqlite3.Error, ValueError) as exc:  # ValueError: a body that is not JSON
                raise translate(self, exc) from None

        return cast(_F, gen)

    @functools.wraps(method)
    def call(self: LogReader, *args: Any, **kw: Any) -> Any:
        try:
            return method(self, *args, **kw)
        except (sqlite3.Error, ValueError) as exc:
            raise translate(self, exc) from None

    return cast(_F, call)


class LogReader(RunLookup):
    """A read-only view of a flock-es database.

    Example::

        with LogReader(Path("data/flock-es.db")) as log:
            run = log.resolve_run("r-2026")
            state = fold(log.events(run))
    """

    path: Path

    def __init__(self, path: Path, *, verify: bool = False) -> None:
        self.path = Path(path)
        check_database(self.path, must_exist=True)
        try:
            self._con = sqlite3.connect(read_uri(self.path), uri=True, check_same_thread=False)
            self._con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._con.execute("SELECT 1 FROM events LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise storage_error(self.path, exc) from None
        if verify:  # commands check before they trust the file (bounded in time)
            verify_db(self.path, self._con, READER_CHECK_SECONDS)

    def close(self) -> None:
        self._con.close()

    @_guarded
    def data_version(self) -> int:
        """Changes whenever another connection commits; a cheap "anything new?" check."""
        return int(self._con.execute("PRAGMA data_version").fetchone()[0])

    @_guarded
    def runs(self) -> list[RunRow]:
        rows = self._con.execute(
            "SELECT run_id, program, model, started_at, finished_at, status, parent_run, "
            "fork_seq, first_seq, last_seq, events FROM runs ORDER BY started_at, first_seq"
        ).fetchall()
        return [RunRow(*r) for r in rows]

    @_guarded
    def run_ids_like(self, ref: str) -> list[str]:
        rows = self._con.execute(
            "SELECT run_id FROM runs WHERE run_id = ? OR run_id LIKE ? ESCAPE '\\'",
            (ref, prefix_pattern(ref)),
        ).fetchall()
        return [r[0] for r in rows]

    @_guarded
    def iter_events(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> Iterator[Event]:
        sql, args = events_query(_EVENT_COLS, "?", run_id, after, until, limit)
        yield from self._decoded(sql, args)

    def _decoded(self, sql: str, args: Sequence[object]) -> Iterator[Event]:
        """The events of the rows ``sql`` selects, decoded as the cursor reads them (a
        kind this flock-es does not know is skipped; the callers are ``_guarded``)."""
        for row in self._con.execute(sql, args):
            e = row_to_event(row)
            if e is not None:
                yield e

    @_guarded
    def call_records(self, run_id: str, until: int | None = None) -> Iterator[Event]:
        """The run's ``tool.called`` events and the ``model.called`` events answered on a
        retry (``attempt`` > 1) with ``seq <= until``, in order, as the cursor reads them
        (``show``'s listing of calls; the filter is SQL's: a body is decoded only for
        these, never for every answer of a run)."""
        sql, args = events_query(_EVENT_COLS, "?", run_id, 0, until, where=_SHOWN_CALLS)
        yield from self._decoded(sql, args)

    @_guarded
    def events(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> list[Event]:
        """The events of ``run_id`` as a list. A page (``limit``: a snapshot job reads
        in pages) is fetched whole before it is decoded, so its read transaction, which
        keeps the run's writer from restarting the WAL, lasts SQLite's part (under a
        third of the page's CPU), not the decoding too: a job at the lowest priority
        may wait long between two of its events."""
        if limit is None:  # a whole run, as it is decoded: not all its rows at once
            return list(self.iter_events(run_id, after, until))
        rows = self.event_rows(run_id, after, until, limit)
        return [e for e in map(row_to_event, rows) if e is not None]

    @_guarded
    def event_rows(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> list[EventRow]:
        sql, args = events_query(_EVENT_COLS, "?", run_id, after, until, limit)
        return self._con.execute(sql, args).fetchall()

    @_guarded
    def events_after(self, cursor: int, limit: int | None = None) -> list[Event]:
        """Events of every run with ``seq > cursor``, in commit order (following a database)."""
        sql, args = events_query(_EVENT_COLS, "?", None, cursor, limit=limit)
        return list(self._decoded(sql, args))

    @_guarded
    def events_at(self, seqs: Sequence[int]) -> list[Event]:
        """The events at ``seqs`` (of any run), in seq order; a seq with no event is skipped."""
        out: list[Event] = []
        for i in range(0, len(seqs), _SEQS_PER_QUERY):
            part = list(seqs[i : i + _SEQS_PER_QUERY])
            marks = ",".join("?" * len(part))
            sql = f"SELECT {_EVENT_COLS} FROM events WHERE seq IN ({marks}) ORDER BY seq"
            out.extend(self._decoded(sql, part))
        return out

    @_guarded
    def last_seq(self, run_id: str | None = None) -> int:
        if run_id is None:
            row = self._con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        else:
            row = self._con.execute(
                "SELECT coalesce(max(seq), 0) FROM events WHERE run_id = ?", (run_id,)
            ).fetchone()
        return int(row[0])

    @_guarded
    def first_seq(self, run_id: str) -> int:
        row = self._con.execute(
            "SELECT coalesce(min(seq), 0) FROM events WHERE run_id = ?", (run_id,)
        ).fetchone()
        return int(row[0])

    @_guarded
    def run_stats(self) -> dict[str, dict[str, object]]:
        """Per-run counters for ``flock-es runs``, from the ``runs`` read model (no fold).

        Keys: scheduled, done, failed, calls, tokens_in, tokens_out, cost,
        cost_unknown, last_ts, failed_attempts (model.attempt events), retried (model calls
        answered after a retry), artifacts, pid, host (of the last process that ran it).
        A file written before schema 9 (not opened by a writer since) has no counters:
        they are aggregated from its events (``run_counters`` says how they differ).
        """
        if int(self._con.execute("PRAGMA user_version").fetchone()[0]) < COUNTERS_SINCE:
            return self._aggregated_stats()
        return dict(stats_of_row(r) for r in self._con.execute(STATS_SELECT))

    def _aggregated_stats(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        rows = self._con.execute(_RUN_STATS).fetchall()
        keys: tuple[str, ...] = ("scheduled", "done", "failed", "calls", "tokens_in")
        keys += ("tokens_out", "cost", "cost_unknown", "last_ts", "failed_attempts", "retried")
        for run_id, *vals in rows:
            out[run_id] = dict(zip(keys, vals, strict=True))
            out[run_id].update(artifacts=0, pid=None, host=None)
        for run_id, n in self._con.execute(
            "SELECT run_id, count(*) FROM artifacts GROUP BY run_id"
        ).fetchall():
            if run_id in out:
                out[run_id]["artifacts"] = n
        for run_id, pid, host in self._con.execute(_LAST_PROCESS).fetchall():
            if run_id in out:
                out[run_id].update(pid=pid, host=host)
        return out

    @_guarded
    def owner(self, run_id: str) -> Lease | None:
        """The lease on ``run_id`` (expired or not), or None."""
        try:
            row = self._con.execute(
                "SELECT run_id, token, pid, host, since, heartbeat, expires FROM owners "
                "WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        except sqlite3.OperationalError:  # a schema-1 file has no owners table
            return None
        return Lease(*row) if row else None

    @_guarded
    def snapshot(self, run_id: str, at: int | None = None) -> tuple[int, bytes] | None:
        """The latest stored snapshot of ``run_id`` at or before seq ``at``: (seq, bytes)."""
        try:
            row = self._con.execute(
                "SELECT seq, state FROM snapshots WHERE run_id = ? AND seq <= ? "
                "ORDER BY seq DESC LIMIT 1",
                (run_id, at if at is not None else 2**62),
            ).fetchone()
        except sqlite3.OperationalError:  # a file older than schema 4 has no snapshots
            return None
        return (int(row[0]), bytes(row[1])) if row else None

    @_guarded
    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run a read-only SQL query (used by tests and the spans trace)."""
        return list(self._con.execute(sql, args).fetchall())
