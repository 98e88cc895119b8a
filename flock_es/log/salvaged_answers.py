"""Model answers and tool results a salvage found after a run's cut, kept for the
resume that follows.

``salvage`` copies a run only up to its first lost event. The paid answers it
could still read after that point would be lost with the rest, and the resume
would pay for each again; the tools those answers asked for would run again,
side effects and all (a card charged twice). They go to tables of their own in
the new database, ``salvaged_answers`` and ``salvaged_tool_results``, outside
the log: the log stays a prefix the run passed through. A resume offers each
answer to the task that makes the same call again (same task id, call index
and request; task ids are digests of their inputs, so a re-run task has its
old id), and each tool result to the same tool call (same task id, call index,
position, tool and arguments), and records it in the log then, as that call's
``model.called`` or ``tool.called``: the log reads as if it had been answered
at once.

This is not a read model: nothing rebuilds it from the events, and an export
does not carry it. It exists only in a database that ``salvage`` wrote.

Example::

    keep_answers(Path("recovered.db"), [(run_id, EventKind.MODEL_CALLED, body), ...])
    kept = salvaged_answers(Path("recovered.db"), run_id)  # None if it kept none
    body = kept.pop((task_id, 0)) if kept is not None else None
    result = kept.pop_tool((task_id, 0, 0)) if kept is not None else None
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flock_es.domain.events import EventKind
from flock_es.log.event_rows import dumps
from flock_es.log.schema import file_uri

__all__ = ["TABLE", "TOOLS_TABLE", "Kept", "SalvagedAnswers", "keep_answers", "salvaged_answers"]

TABLE = "salvaged_answers"
TOOLS_TABLE = "salvaged_tool_results"

# Each table's key after (run id, task id): an answer's call index; a tool result's
# call index and position in that answer's tool calls.
_KEYS = {TABLE: ("call_index",), TOOLS_TABLE: ("call_index", "position")}


def _create(table: str) -> str:
    cols = "".join(f"{k} INTEGER NOT NULL, " for k in _KEYS[table])
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (run_id TEXT NOT NULL, task_id TEXT NOT NULL, "
        f"{cols}body TEXT NOT NULL, PRIMARY KEY (run_id, task_id, {', '.join(_KEYS[table])}))"
    )


_BATCH = 1000
Kept = tuple[str, EventKind, dict[str, Any]]
"""A run id, and the kind and body of a ``model.called`` or ``tool.called`` to keep."""


def keep_answers(db: Path, kept: Iterable[Kept]) -> tuple[int, int]:
    """Keep paid answers and tool results (``Kept``: other kinds are skipped) in ``db``,
    in one transaction, ``_BATCH`` rows held at a time (a run's answers with their
    requests can be hundreds of MB); how many answers, and how many tool results."""
    answers: list[tuple[str, str, int, str]] = []
    tools: list[tuple[str, str, int, int, str]] = []
    counts = [0, 0]

    def flush() -> None:
        con.executemany(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)", answers)
        con.executemany(f"INSERT OR REPLACE INTO {TOOLS_TABLE} VALUES (?, ?, ?, ?, ?)", tools)
        counts[0] += len(answers)
        counts[1] += len(tools)
        answers.clear()
        tools.clear()

    con = sqlite3.connect(db)
    try:
        with con:
            con.execute(_create(TABLE))
            con.execute(_create(TOOLS_TABLE))
            for run_id, kind, b in kept:
                if kind is EventKind.MODEL_CALLED:
                    answers.append((run_id, b["task_id"], b["call_index"], dumps(b)))
                elif kind is EventKind.TOOL_CALLED:
                    row = (run_id, b["task_id"], b["call_index"], b["position"], dumps(b))
                    tools.append(row)
                if len(answers) + len(tools) >= _BATCH:
                    flush()
            flush()
    finally:
        con.close()
    return counts[0], counts[1]


class SalvagedAnswers:
    """The answers and tool results a salvage kept for one run: their keys in memory,
    each body read when its call comes (a run's answers with their requests: 1.2 GB
    of dicts for 82,000 calls, read whole).

    ``pop((task id, call index))`` gives an answer's body once, then forgets it;
    ``pop_tool((task id, call index, position))`` a tool result's.
    """

    def __init__(
        self,
        con: sqlite3.Connection,
        run_id: str,
        keys: set[tuple[str, int]],
        tool_keys: set[tuple[str, int, int]] | None = None,
    ) -> None:
        self._con, self._run_id, self._keys = con, run_id, keys
        self._tool_keys = tool_keys or set()

    def __len__(self) -> int:
        return len(self._keys) + len(self._tool_keys)

    def pop(self, key: tuple[str, int]) -> dict[str, Any] | None:
        return self._pop(TABLE, self._keys, key)

    def pop_tool(self, key: tuple[str, int, int]) -> dict[str, Any] | None:
        return self._pop(TOOLS_TABLE, self._tool_keys, key)

    def _pop(self, table: str, keys: set[Any], key: tuple[Any, ...]) -> dict[str, Any] | None:
        if key not in keys:
            return None
        keys.discard(key)
        where = "".join(f" AND {k} = ?" for k in _KEYS[table])
        row = self._con.execute(
            f"SELECT body FROM {table} WHERE run_id = ? AND task_id = ?{where}",
            (self._run_id, *key),
        ).fetchone()
        body: dict[str, Any] | None = None if row is None else json.loads(row[0])
        return body

    def close(self) -> None:
        self._con.close()


def salvaged_answers(db: Path | str, run_id: str) -> SalvagedAnswers | None:
    """The answers and tool results a salvage kept for ``run_id``; None for a
    PostgreSQL database, a file no salvage wrote, or a run it kept none for."""
    if not isinstance(db, Path) or not db.is_file():
        return None
    con = sqlite3.connect(file_uri(db, "mode=ro"), uri=True)
    keys = _keys(con, TABLE, run_id)
    tools = _keys(con, TOOLS_TABLE, run_id)  # none in a copy an earlier salvage wrote
    if not keys and not tools:
        con.close()
        return None
    return SalvagedAnswers(con, run_id, set(keys), set(tools))


def _keys(con: sqlite3.Connection, table: str, run_id: str) -> list[Any]:
    """The keys of ``run_id``'s rows in ``table``, each (task id, *``_KEYS[table]``)."""
    sql = f"SELECT task_id, {', '.join(_KEYS[table])} FROM {table} WHERE run_id = ?"
    try:
        return [tuple(r) for r in con.execute(sql, (run_id,))]
    except sqlite3.OperationalError:  # no such table: no salvage wrote it in this file
        return []
