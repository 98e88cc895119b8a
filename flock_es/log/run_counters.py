"""Per-run counters in the ``runs`` read model: what ``flock-es runs`` lists (schema 9).

``flock-es runs`` and the TUI's runs view used to aggregate the whole ``events``
table at every call (``count(DISTINCT task_id)`` and ``json_extract`` per row):
8.0 s on a log holding one 100,000-artifact run (2.6M events), growing with the
log (issue 14). The writer now adds each unit's counts to its run's row in the
same transaction, as it already did for ``events`` and ``last_seq``, so the
command reads one row per run.

The counts, per run (all from the run's own events, inherited ones of a fork too):

- ``scheduled``, ``done``: ``task.scheduled`` and ``task.completed`` events (one each
  per task);
- ``failed``: tasks whose last word is a final failure: a ``task.failed`` that will
  not be retried adds one, a ``run.resumed`` taking failed tasks up again
  (``--retry-failed``) takes away as many as it names;
- ``calls``, ``tokens_in``, ``tokens_out``, ``cost_nanos`` (a cost in billionths of
  the currency: integers add up the same in any grouping, so a rebuilt row equals
  the live one), ``cost_unknown`` (calls with no cost), ``retried`` (calls answered
  on a later attempt): from ``model.called``;
- ``attempts``: failed attempts (``model.attempt``);
- ``artifacts``: ``artifact.published`` events;
- ``last_ts``: the latest event time; ``pid`` and ``host``: of the last process that
  started or resumed the run.

SQLite's writer counts the frequent kinds in its own loop over a unit
(``event_rows._event_chunks``) and the rare ones here (``count_rare``); PostgreSQL's
writer and the rebuild count every event here (``count_event``). Files written
before schema 9 get their counts from one pass over their events when a writer
first opens them (``SQLITE_BACKFILL``, ``PG_BACKFILL``).

Example::

    counts = new_counts()
    for e in events:
        count_event(e, counts)
    con.executemany(TOUCH_RUN, touch_rows({run_id: counts}))
"""

from __future__ import annotations

import sqlite3
from typing import Any

from flock_es.domain.events import Event, EventKind

__all__ = [
    "COUNTERS_SINCE",
    "COUNTER_COLUMNS",
    "PG_ADD_COLUMNS",
    "PG_BACKFILL",
    "PG_RESET",
    "PG_TOUCH_RUN",
    "RARE_KINDS",
    "SQLITE_BACKFILL",
    "SQLITE_COLUMNS",
    "STATS_SELECT",
    "TOUCH_RUN",
    "add_sqlite_columns",
    "backfill_sqlite",
    "count_event",
    "count_rare",
    "new_counts",
    "stats_of_row",
    "touch_rows",
]

COUNTERS_SINCE = 9
"""The schema version (SQLite's and PostgreSQL's) that brought the counters."""
COUNTER_COLUMNS = (
    "scheduled",
    "done",
    "failed",
    "calls",
    "tokens_in",
    "tokens_out",
    "cost_nanos",
    "cost_unknown",
    "attempts",
    "retried",
    "artifacts",
)
# A run's counts as the writer gathers them: [last seq, events, *COUNTER_COLUMNS, last ts].
LAST, EVENTS = 0, 1
(SCHEDULED, DONE, FAILED, CALLS, TOKENS_IN, TOKENS_OUT) = range(2, 8)
(COST_NANOS, COST_UNKNOWN, ATTEMPTS, RETRIED, ARTIFACTS, LAST_TS) = range(8, 14)

_K = EventKind
_SCHEDULED, _COMPLETED, _PUBLISHED = _K.TASK_SCHEDULED, _K.TASK_COMPLETED, _K.ARTIFACT_PUBLISHED
_FAILED, _CALLED, _ATTEMPT, _RESUMED = (
    _K.TASK_FAILED,
    _K.MODEL_CALLED,
    _K.MODEL_ATTEMPT,
    _K.RUN_RESUMED,
)
RARE_KINDS = frozenset({_FAILED, _CALLED, _ATTEMPT, _RESUMED})
"""The kinds ``count_rare`` counts (SQLite's writer hands them over with the other
rare kinds; the frequent ones it counts itself)."""


def new_counts() -> list[Any]:
    """A run's counts before any event: [last seq, events, counters..., last ts]."""
    return [0] * LAST_TS + [0.0]


def count_rare(e: Event, c: list[Any]) -> None:
    """Add rare event ``e`` (one of ``RARE_KINDS``) to its run's counts ``c``."""
    kind, body = e.kind, e.body
    if kind is _CALLED:
        c[CALLS] += 1
        c[TOKENS_IN] += body.get("tokens_in") or 0
        c[TOKENS_OUT] += body.get("tokens_out") or 0
        cost = body.get("cost")
        if cost is None:
            c[COST_UNKNOWN] += 1
        else:  # as the backfill's SQL rounds it (CAST truncates; costs are not negative)
            c[COST_NANOS] += int(float(cost) * 1e9 + 0.5)
        if (body.get("attempt") or 1) > 1:
            c[RETRIED] += 1
    elif kind is _FAILED:
        if not body.get("will_retry"):
            c[FAILED] += 1
    elif kind is _ATTEMPT:
        c[ATTEMPTS] += 1
    elif kind is _RESUMED:
        c[FAILED] -= len(body.get("retried") or ())


def count_event(e: Event, c: list[Any]) -> None:
    """Add event ``e`` (any kind, its seq set) to its run's counts ``c``."""
    kind = e.kind
    if kind is _SCHEDULED:
        c[SCHEDULED] += 1
    elif kind is _COMPLETED:
        c[DONE] += 1
    elif kind is _PUBLISHED:
        c[ARTIFACTS] += 1
    elif kind in RARE_KINDS:
        count_rare(e, c)
    c[EVENTS] += 1
    c[LAST] = max(c[LAST], e.seq or 0)
    c[LAST_TS] = max(c[LAST_TS], e.ts)


def touch_rows(runs: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """``TOUCH_RUN``'s rows: each run's counts, then its id."""
    return [(*c, run) for run, c in runs.items()]


_ADD = ", ".join(f"{col}={col}+{{p}}" for col in COUNTER_COLUMNS)
TOUCH_RUN = (
    f"UPDATE runs SET last_seq=?, events=events+?, {_ADD.format(p='?')}, "
    "last_ts=max(coalesce(last_ts, 0), ?) WHERE run_id=?"
)
PG_TOUCH_RUN = (
    f"UPDATE runs SET last_seq=%s, events=events+%s, {_ADD.format(p='%s')}, "
    "last_ts=greatest(coalesce(last_ts, 0), %s) WHERE run_id=%s"
)

# Each column schema 9 adds to ``runs``: its name, its SQLite type, its PostgreSQL type.
_ADDED = [
    *((col, "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0") for col in COUNTER_COLUMNS),
    ("last_ts", "REAL", "DOUBLE PRECISION"),
    ("pid", "INTEGER", "INTEGER"),
    ("host", "TEXT", "TEXT"),
]
SQLITE_COLUMNS = ",\n".join(f"    {col} {kind}" for col, kind, _ in _ADDED)
"""The counter columns of ``runs``, as its CREATE TABLE lists them (SQLite)."""
PG_ADD_COLUMNS = "".join(
    f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {col} {kind};\n" for col, _, kind in _ADDED
)
"""The counter columns added to a PostgreSQL ``runs`` (its migration 9)."""
PG_RESET = ", ".join(f"{col}={0 if col in COUNTER_COLUMNS else 'NULL'}" for col, _, _ in _ADDED)
"""The counter columns as a run's row has them before its first event (an ``UPDATE``'s
assignments: PostgreSQL's ``run.started`` upsert)."""


def _backfill(num: str, text: str, nanos: str, retried: str) -> str:
    """The counts of every run from its events, in one pass (an upgrade to schema 9),
    named as ``runs`` names them; ``num``/``text`` read a body field as a number or text."""
    called = "kind='model.called'"
    sums = (
        "kind='task.scheduled' THEN 1",
        "kind='task.completed' THEN 1",
        f"kind='task.failed' AND coalesce({text.format('will_retry')}, 'false')"
        f" NOT IN ('true', '1') THEN 1 WHEN kind='run.resumed' THEN -{retried}",
        f"{called} THEN 1",
        f"{called} THEN coalesce({num.format('tokens_in')}, 0)",
        f"{called} THEN coalesce({num.format('tokens_out')}, 0)",
        f"{called} AND {num.format('cost')} IS NOT NULL THEN {nanos}",
        f"{called} AND {num.format('cost')} IS NULL THEN 1",
        "kind='model.attempt' THEN 1",
        f"{called} AND coalesce({num.format('attempt')}, 1) > 1 THEN 1",
        "kind='artifact.published' THEN 1",
    )
    cols = ", ".join(
        f"sum(CASE WHEN {s} ELSE 0 END) AS {col}"
        for s, col in zip(sums, COUNTER_COLUMNS, strict=True)
    )
    return f"SELECT run_id, {cols}, max(ts) AS last_ts FROM events GROUP BY run_id"


_SET = ", ".join((*COUNTER_COLUMNS, "last_ts"))
_FROM_C = ", ".join(f"c.{col}" for col in (*COUNTER_COLUMNS, "last_ts"))
_SQ_NUM = "json_extract(body, '$.{}')"
SQLITE_BACKFILL = (
    "CREATE TEMP TABLE run_counts AS "
    + _backfill(
        _SQ_NUM,
        "CAST(json_extract(body, '$.{}') AS TEXT)",  # a JSON true reads as 1
        f"CAST({_SQ_NUM.format('cost')} * 1e9 + 0.5 AS INTEGER)",
        "coalesce(json_array_length(body, '$.retried'), 0)",
    ),
    "CREATE INDEX temp.run_counts_run ON run_counts(run_id)",
    f"UPDATE runs SET ({_SET}) = (SELECT {_FROM_C} FROM run_counts c "
    "WHERE c.run_id = runs.run_id) WHERE run_id IN (SELECT run_id FROM run_counts)",
    "UPDATE runs SET (pid, host) = (SELECT json_extract(body, '$.pid'), "
    "json_extract(body, '$.host') FROM events e WHERE e.run_id = runs.run_id "
    "AND kind IN ('run.started', 'run.resumed') ORDER BY seq DESC LIMIT 1)",
    "DROP TABLE run_counts",
)
"""Statements that fill the counters of a file written before schema 9."""


def add_sqlite_columns(con: sqlite3.Connection) -> None:
    """The counter columns of schema 9 that a file's ``runs`` lacks (its upgrade)."""
    have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    for col, kind, _ in _ADDED:
        if col not in have:
            con.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")


def backfill_sqlite(con: sqlite3.Connection) -> None:
    """Fill the counters of a file written before schema 9 from its events."""
    for stmt in SQLITE_BACKFILL:
        con.execute(stmt)


_PG_NUM = "(body->>'{}')::double precision"
PG_BACKFILL = (
    f"UPDATE runs SET ({_SET}) = ({_FROM_C}) FROM ("
    + _backfill(
        _PG_NUM,
        "(body->>'{}')",
        f"floor({_PG_NUM.format('cost')} * 1e9 + 0.5)::bigint",
        "coalesce(json_array_length(body->'retried'), 0)",
    )
    + ") AS c WHERE c.run_id = runs.run_id;\n"
    "UPDATE runs SET (pid, host) = (SELECT (body->>'pid')::integer, body->>'host' "
    "FROM events e WHERE e.run_id = runs.run_id AND kind IN ('run.started', 'run.resumed') "
    "ORDER BY seq DESC LIMIT 1);"
)
"""The same for PostgreSQL, as one script."""

STATS_SELECT = f"SELECT run_id, {_SET}, pid, host FROM runs"
"""The counters of every run (both backends)."""


def stats_of_row(row: tuple[Any, ...]) -> tuple[str, dict[str, object]]:
    """A ``STATS_SELECT`` row as ``run_stats`` gives it: (run id, its counters)."""
    run_id, *vals = row
    got = dict(zip((*COUNTER_COLUMNS, "last_ts", "pid", "host"), vals, strict=True))
    nanos = got.pop("cost_nanos")
    got["cost"] = int(nanos) / 1e9 if isinstance(nanos, int | float) else 0.0
    got["failed_attempts"] = got.pop("attempts")
    return str(run_id), got
