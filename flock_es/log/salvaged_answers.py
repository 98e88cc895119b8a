"""Model answers a salvage found after a run's cut, kept for the resume that follows.

``salvage`` copies a run only up to its first lost event. The paid answers it
could still read after that point would be lost with the rest, and the resume
would pay for each again. They go to a table of their own in the new database,
``salvaged_answers``, outside the log: the log stays a prefix the run passed
through. A resume offers each to the task that makes the same call again
(same task id, call index and request; task ids are digests of their inputs,
so a re-run task has its old id), and records it in the log as that call's
``model.called`` then, so the log reads as if it had been answered at once.

This is not a read model: nothing rebuilds it from the events, and an export
does not carry it. It exists only in a database that ``salvage`` wrote.

Example::

    keep_answers(Path("recovered.db"), [(run_id, body), ...])
    answers = salvaged_answers(Path("recovered.db"), run_id)  # None if it kept none
    body = answers.pop((task_id, 0)) if answers is not None else None
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flock_es.log.event_rows import dumps

__all__ = ["TABLE", "SalvagedAnswers", "keep_answers", "salvaged_answers"]

TABLE = "salvaged_answers"

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    run_id     TEXT    NOT NULL,
    task_id    TEXT    NOT NULL,
    call_index INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    PRIMARY KEY (run_id, task_id, call_index)
)
"""


def keep_answers(db: Path, answers: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Keep ``(run id, model.called body)`` pairs in ``db``, streamed into one
    transaction (a run's answers with their requests can be hundreds of MB);
    returns how many."""
    kept = 0

    def rows() -> Iterator[tuple[str, str, int, str]]:
        nonlocal kept
        for run_id, b in answers:
            kept += 1
            yield run_id, b["task_id"], b["call_index"], dumps(b)

    con = sqlite3.connect(db)
    try:
        with con:
            con.execute(_CREATE)
            con.executemany(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)", rows())
    finally:
        con.close()
    return kept


class SalvagedAnswers:
    """The answers a salvage kept for one run: their keys in memory, each body read
    when its call comes (a run's answers with their requests: 1.2 GB of dicts for
    82,000 calls, read whole).

    ``pop((task id, call index))`` gives the body once, then forgets it.
    """

    def __init__(self, con: sqlite3.Connection, run_id: str, keys: set[tuple[str, int]]) -> None:
        self._con, self._run_id, self._keys = con, run_id, keys

    def __len__(self) -> int:
        return len(self._keys)

    def pop(self, key: tuple[str, int]) -> dict[str, Any] | None:
        if key not in self._keys:
            return None
        self._keys.discard(key)
        row = self._con.execute(
            f"SELECT body FROM {TABLE} WHERE run_id = ? AND task_id = ? AND call_index = ?",
            (self._run_id, *key),
        ).fetchone()
        body: dict[str, Any] | None = None if row is None else json.loads(row[0])
        return body

    def close(self) -> None:
        self._con.close()


def salvaged_answers(db: Path | str, run_id: str) -> SalvagedAnswers | None:
    """The answers a salvage kept for ``run_id``; None for a PostgreSQL database, a
    file no salvage wrote, or a run it kept none for."""
    if not isinstance(db, Path) or not db.is_file():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            f"SELECT task_id, call_index FROM {TABLE} WHERE run_id = ?", (run_id,)
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: no salvage wrote this file
        rows = []
    if not rows:
        con.close()
        return None
    return SalvagedAnswers(con, run_id, {(t, i) for t, i in rows})
