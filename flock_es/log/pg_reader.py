"""Read access to the PostgreSQL log: the same queries as the SQLite reader.

``data_version()`` is the cheap "anything new?" poll (the highest seq, one
index probe); ``wait(timeout)`` sleeps until a writer's NOTIFY arrives or the
timeout passes, so followers wake at once and still poll as a fallback.

Example::

    with PgLogReader("postgresql://postgres@127.0.0.1:5432/test") as log:
        run = log.resolve_run("latest")
        state = fold(log.events(run))
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from flock_es.domain.events import Event
from flock_es.errors import DatabaseError
from flock_es.log.body_paths import ANSWERED_ON, CALLED, TOOL_CALLED
from flock_es.log.pg_schema import (
    NOTIFY_CHANNEL,
    check_schema,
    describe_url,
    first_line,
    pg_connect,
)
from flock_es.log.ports import EventRow, Lease, RunRow
from flock_es.log.reader import row_to_event
from flock_es.log.run_counters import STATS_SELECT, stats_of_row
from flock_es.log.run_lookup import RunLookup, events_query, prefix_pattern

__all__ = ["RECONNECT_EVERY", "PgLogReader"]

_EVENT_COLS = "seq, run_id, kind, ts, v, body::text"
RECONNECT_EVERY = 5.0  # seconds between attempts to replace a lost connection
_PAGE = 10_000  # events per query of iter_events
# ``call_records``: a body is read as JSON only for the run's model.called rows.
_SHOWN_CALLS = (
    f"(kind = '{TOOL_CALLED}' OR (kind = '{CALLED}'"
    f" AND coalesce((body->>'{ANSWERED_ON}')::integer, 1) > 1))"
)
_CALL_PAGE = 100  # events per query of call_records (a tool's result may be large)


class PgLogReader(RunLookup):
    """A read-only view of a flock-es PostgreSQL database.

    Example::

        with PgLogReader("postgresql://postgres@127.0.0.1:5432/test") as log:
            print([r.run_id for r in log.runs()])
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = describe_url(url)
        self._con = pg_connect(url)
        self._listener: psycopg.Connection[tuple[Any, ...]] | None = None
        self._tried = 0.0  # when a lost connection was last replaced (``_reconnect``)
        self._lost = "the connection was lost"
        try:
            check_schema(self._con, url)
            self._con.read_only = True
        except BaseException:
            self._con.close()
            raise

    def close(self) -> None:
        self._con.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _rows(self, sql: str, args: tuple[object, ...] | list[object] = ()) -> list[Any]:
        if self._con.closed:  # lost (the server went away or ended it): try a new one
            self._reconnect()
        try:
            return self._con.execute(sql, args).fetchall()
        except psycopg.OperationalError as exc:
            raise self._unreadable(first_line(exc)) from None

    def _unreadable(self, why: str) -> DatabaseError:
        return DatabaseError(f"cannot read {self.path}: {why}")

    def _reconnect(self) -> None:
        """A new connection in place of a lost one: a reader that follows a run (the TUI)
        goes on once the server is back. Tried at most every ``RECONNECT_EVERY`` s, for
        at most 2 s (libpq's least): each read meanwhile says it cannot at once, and a
        server that does not answer at all holds a read up 2 s, not the usual 10."""
        now = time.monotonic()
        if now - self._tried < RECONNECT_EVERY:
            raise self._unreadable(self._lost)
        self._tried = now
        try:
            con = pg_connect(self.url, timeout=2)
        except DatabaseError as exc:
            self._lost = str(exc).split(": ", 1)[-1]
            raise
        con.read_only = True
        self._con = con

    def data_version(self) -> int:
        """Moves whenever something was committed; a cheap "anything new?" check."""
        return int(self._rows("SELECT coalesce(max(seq), 0) FROM events")[0][0])

    def wait(self, timeout: float) -> bool:
        """Block until a writer commits (LISTEN/NOTIFY) or ``timeout`` seconds pass.

        Returns True when woken by a notification. Callers poll afterwards either
        way, so a missed notification costs at most one timeout.
        """
        if self._listener is not None and self._listener.closed:
            self._listener = None  # lost: listen on a new one
        try:
            if self._listener is None:
                self._listener = pg_connect(self.url)
                self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            woke = False
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                woke = True
            return woke
        except psycopg.OperationalError as exc:
            raise self._unreadable(first_line(exc)) from None

    def runs(self) -> list[RunRow]:
        rows = self._rows(
            "SELECT run_id, program, model, started_at, finished_at, status, parent_run, "
            "fork_seq, first_seq, last_seq, events FROM runs ORDER BY started_at, first_seq"
        )
        return [RunRow(*r) for r in rows]

    def run_ids_like(self, ref: str) -> list[str]:
        rows = self._rows(
            "SELECT run_id FROM runs WHERE run_id = %s OR run_id LIKE %s",
            (ref, prefix_pattern(ref)),
        )
        return [r[0] for r in rows]

    def iter_events(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> Iterator[Event]:
        # In pages by seq, so a long run's fold or replay never holds all its rows.
        yield from self._paged(run_id, after, until, limit, _PAGE)

    def event_rows(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> list[EventRow]:
        sql, args = events_query(_EVENT_COLS, "%s", run_id, after, until, limit)
        return self._rows(sql, args)

    def call_records(self, run_id: str, until: int | None = None) -> Iterator[Event]:
        """The run's ``tool.called`` events and the ``model.called`` events answered on a
        retry (``attempt`` > 1) with ``seq <= until``, in order, in pages by seq (see
        ``LogReader.call_records``)."""
        yield from self._paged(run_id, 0, until, None, _CALL_PAGE, _SHOWN_CALLS)

    def _paged(
        self,
        run_id: str,
        after: int,
        until: int | None,
        limit: int | None,
        size: int,
        where: str | None = None,
    ) -> Iterator[Event]:
        """``run_id``'s events after ``after`` (meeting ``where``), ``size`` a query."""
        left = limit
        while left is None or left > 0:
            page = size if left is None else min(size, left)
            sql, args = events_query(_EVENT_COLS, "%s", run_id, after, until, page, where=where)
            rows = self._rows(sql, args)
            for row in rows:
                e = row_to_event(row)
                if e is not None:
                    yield e
            if len(rows) < page:
                return
            after = int(rows[-1][0])
            left = None if left is None else left - len(rows)

    def events_after(self, cursor: int, limit: int | None = None) -> list[Event]:
        """Events of every run with ``seq > cursor``, in commit order, gap-free."""
        sql, args = events_query(_EVENT_COLS, "%s", None, cursor, limit=limit)
        return [e for e in (row_to_event(r) for r in self._rows(sql, args)) if e is not None]

    def events_at(self, seqs: Sequence[int]) -> list[Event]:
        """The events at ``seqs`` (of any run), in seq order; a seq with no event is skipped."""
        if not seqs:
            return []
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE seq = ANY(%s) ORDER BY seq"
        return [
            e for e in (row_to_event(r) for r in self._rows(sql, (list(seqs),))) if e is not None
        ]

    def last_seq(self, run_id: str | None = None) -> int:
        if run_id is None:
            return self.data_version()
        rows = self._rows("SELECT coalesce(max(seq), 0) FROM events WHERE run_id = %s", (run_id,))
        return int(rows[0][0])

    def first_seq(self, run_id: str) -> int:
        rows = self._rows("SELECT coalesce(min(seq), 0) FROM events WHERE run_id = %s", (run_id,))
        return int(rows[0][0])

    def run_stats(self) -> dict[str, dict[str, object]]:
        """Per-run counters for ``flock-es runs``: the ``runs`` read model's (schema 9)."""
        return dict(stats_of_row(r) for r in self._rows(STATS_SELECT))

    def owner(self, run_id: str) -> Lease | None:
        """The lease on ``run_id`` (expired or not), or None."""
        rows = self._rows(
            "SELECT run_id, token, pid, host, since, heartbeat, expires FROM owners "
            "WHERE run_id = %s",
            (run_id,),
        )
        return Lease(*rows[0]) if rows else None

    def snapshot(self, run_id: str, at: int | None = None) -> tuple[int, bytes] | None:
        """The latest stored snapshot of ``run_id`` at or before seq ``at``: (seq, bytes)."""
        rows = self._rows(
            "SELECT seq, state FROM snapshots WHERE run_id = %s AND seq <= %s "
            "ORDER BY seq DESC LIMIT 1",
            (run_id, at if at is not None else 2**62),
        )
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run a read-only SQL query; ``?`` placeholders work as on SQLite."""
        return [tuple(r) for r in self._rows(sql.replace("?", "%s"), args)]
