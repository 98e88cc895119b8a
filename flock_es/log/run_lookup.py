"""What both log readers (SQLite, PostgreSQL) do the same way above their SQL:
naming a run by id, prefix or ``latest``, listing a run's events, closing as a
context manager. The subclass supplies the queries.

Example::

    with open_reader(db) as log:            # a LogReader or a PgLogReader
        run_id = log.resolve_run("latest")
        events = log.events(run_id)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Self

from flock_es.domain.events import Event
from flock_es.errors import RunNotFoundError
from flock_es.log.ports import RunRow

__all__ = ["RunLookup", "events_query", "pick_run", "prefix_pattern"]


def prefix_pattern(ref: str) -> str:
    """A ``LIKE`` pattern (escape character ``\\``) for the run ids starting with ``ref``.

    Example: ``prefix_pattern("a_1") == "a\\_1%"``.
    """
    return ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def pick_run(ref: str, ids: list[str], where: object) -> str:
    """The one run ``ref`` names among ``ids`` (its exact id, or the only one it starts).

    Example: ``pick_run("a", ["a1"], "x.db") == "a1"``; none or several raise RunNotFoundError.
    """
    found = sorted(set(ids))
    if ref in found:
        return ref
    if not found:
        raise RunNotFoundError(f"no run {ref!r} in {where} (see `flock-es runs`)")
    if len(found) > 1:
        raise RunNotFoundError(f"run id {ref!r} is ambiguous in {where}: {', '.join(found[:5])}")
    return str(found[0])


def events_query(
    columns: str,
    mark: str,
    run_id: str | None,
    after: int,
    until: int | None = None,
    limit: int | None = None,
    where: str | None = None,
) -> tuple[str, list[object]]:
    """The SELECT of the events with ``after < seq <= until`` of ``run_id`` (of every
    run when None), in commit order, and its arguments; ``mark`` is the dialect's
    placeholder (``?`` or ``%s``); ``where``: a condition of the dialect's they also meet.

    Example: ``events_query("seq, body", "?", "r-1", 10)``.
    """
    sql = f"SELECT {columns} FROM events WHERE "
    args: list[object] = []
    if run_id is not None:
        sql += f"run_id = {mark} AND "
        args.append(run_id)
    sql += f"seq > {mark}"
    args.append(after)
    if until is not None:
        sql += f" AND seq <= {mark}"
        args.append(until)
    if where is not None:
        sql += f" AND {where}"
    sql += " ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {mark}"
        args.append(limit)
    return sql, args


class RunLookup:
    """The reader logic above the SQL; ``path`` names the database in messages."""

    path: Path | str

    def runs(self) -> list[RunRow]:
        """Every run, oldest first."""
        raise NotImplementedError

    def run_ids_like(self, ref: str) -> list[str]:
        """The run ids equal to ``ref`` or starting with it."""
        raise NotImplementedError

    def iter_events(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> Iterator[Event]:
        """``run_id``'s events with ``after < seq <= until``, in order."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def latest_run(self) -> RunRow | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def run_row(self, run_id: str) -> RunRow | None:
        """``run_id``'s row of the ``runs`` read model (None if it has none)."""
        return next((r for r in self.runs() if r.run_id == run_id), None)

    def resolve_run(self, ref: str) -> str:
        """The full run id for ``ref``: an id, a unique prefix, or ``latest``."""
        if ref in ("latest", "last"):
            latest = self.latest_run()
            if latest is None:
                raise RunNotFoundError(f"no runs in {self.path}")
            return str(latest.run_id)
        return pick_run(ref, self.run_ids_like(ref), self.path)

    def events(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> list[Event]:
        return list(self.iter_events(run_id, after, until, limit))
