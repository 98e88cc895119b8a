"""The read models behind the store queries: their tables, indexes and rows.

Schema 3 gives the ``artifacts`` read model the columns Flock's store filters on
(``task_id``, ``correlation_id``, the visibility and whether an ``after``
visibility was released), an ``artifact_tags`` table (one row per tag, so a tag
filter is an index probe, not a JSON scan) and a ``consumptions`` table: which
task (and agent) took which artifact as input, derived from ``task.scheduled``.
Like every read model they are written in the same transaction as their events
and rebuilt from the events alone (``rebuild_read_models``).

Both backends share the rows built here; only the statements' placeholders and
conflict clauses differ (``SQLITE`` and ``POSTGRES``).

Example::

    rows = query_model_rows(events)          # after the events got their seqs
    for sql, args in statements(rows, SQLITE):
        con.executemany(sql, args)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json

from flock_es.domain.events import (
    ArtifactPublished,
    ArtifactReleased,
    Event,
    EventKind,
    TaskScheduled,
    body_as,
)

__all__ = [
    "ARTIFACT_COLUMNS",
    "EPOCH",
    "EPOCH_16_DROPS",
    "EPOCH_BITS",
    "PG_QUERY_DDL",
    "PG_QUERY_INDEXES",
    "POSTGRES",
    "QUERY_INDEXES",
    "QUERY_INDEX_NAMES",
    "READ_MODEL_TABLES",
    "SQLITE",
    "SQLITE_QUERY_TABLES",
    "Dialect",
    "QueryRows",
    "by_key",
    "epoch_in",
    "query_model_rows",
    "statements",
    "visibility_columns",
]

READ_MODEL_TABLES = ("runs", "artifacts", "artifact_tags", "consumptions")
"""Every read model: ``rebuild_read_models`` empties and re-derives each of them."""

# Enum members bound to module globals for the hot paths: in Python 3.11 ``Kind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_PUBLISHED, _SCHEDULED = EventKind.ARTIFACT_PUBLISHED, EventKind.TASK_SCHEDULED
_RELEASED = EventKind.ARTIFACT_RELEASED

# Columns schema 3 adds to ``artifacts`` (name, SQLite type, PostgreSQL type, default).
ARTIFACT_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("task_id", "TEXT", "TEXT", "NULL"),
    ("correlation_id", "TEXT", "TEXT", "NULL"),
    ("vis_kind", "TEXT", "TEXT", "'public'"),
    ("visibility", "TEXT", "TEXT", "NULL"),  # JSON; NULL for public
    ("released", "INTEGER", "INTEGER", "0"),
)

EPOCH_BITS = 13
"""A digest key (an artifact or correlation id) is indexed under its row's epoch,
``seq >> EPOCH_BITS``: new rows then land in the newest epoch's small part of the
index, whatever the size of the log (issue 14: a plain digest key inserts at a
random place, and each commit rewrote about one index page per new row once the
index outgrew a commit: the writer's cost per agent run went from 38 to 68 µs
between 2,000 and 100,000 artifacts). Inside its epoch a key still lands at a
random place, so each commit rewrites the pages of the newest epoch's part: with
65,536 events an epoch (schema 5-6) that part of each of the three indexes grew
to ~250 pages, most of them rewritten by every commit of workload (b) and more
than the page cache holds (8.5 kB written per agent run, half of it these
indexes); with 8,192 (schema 7) it stays ~30 pages (5.2 kB a run;
bench/bench_writer.py). A lookup by id probes each epoch the run spans
(``epochs``): one index seek per 8,192 events of the run."""

EPOCH = f"(seq >> {EPOCH_BITS})"
"""The epoch expression, written exactly as the indexes below spell it (an
expression index serves only a query that repeats its expression)."""

# Every filter of ``query_artifacts`` has an index that also yields publication order
# (seq), so a page is read straight off the index: no sort, no scan of the run.
# A digest (an id) is never the first key of an index written on the hot path: the
# id and correlation indexes start with the epoch, and tags are keyed by seq (which
# they share with their artifact). ``{seq}``: on SQLite (schema 8) ``artifacts`` is
# keyed by seq, and every index entry ends in the key: naming seq again stored it
# twice; PostgreSQL's indexes name it.
_INDEXES = """
CREATE INDEX IF NOT EXISTS artifacts_run_seq ON artifacts(run_id{seq});
CREATE INDEX IF NOT EXISTS artifacts_type_seq ON artifacts(run_id, type{seq});
CREATE INDEX IF NOT EXISTS artifacts_producer ON artifacts(run_id, produced_by{seq});
CREATE INDEX IF NOT EXISTS artifacts_ts ON artifacts(run_id, ts);
CREATE INDEX IF NOT EXISTS artifacts_restricted ON artifacts(run_id{seq}) WHERE vis_kind <> 'public';
CREATE INDEX IF NOT EXISTS artifacts_id_e13 ON artifacts({epoch}, id);
CREATE INDEX IF NOT EXISTS artifacts_correlation_e13 ON artifacts({epoch}, correlation_id{seq});
CREATE INDEX IF NOT EXISTS artifact_tags_seq ON artifact_tags(run_id, seq);
CREATE INDEX IF NOT EXISTS artifact_tags_tag ON artifact_tags(run_id, tag, seq);
CREATE INDEX IF NOT EXISTS consumptions_agent ON consumptions(run_id, agent, seq);
CREATE INDEX IF NOT EXISTS consumptions_artifact_e13 ON consumptions({epoch}, artifact_id);
"""
QUERY_INDEXES = _INDEXES.format(seq="", epoch=EPOCH)
"""The read models' indexes on SQLite."""
PG_QUERY_INDEXES = _INDEXES.format(seq=", seq", epoch=EPOCH)
"""The same indexes on PostgreSQL (its ``artifacts`` has no key: each names seq)."""

# The epoch indexes' names say their epoch: a file with another epoch size has other
# names, which an upgrade drops (``EPOCH_16_DROPS``) before making these.
EPOCH_16_DROPS = """
DROP INDEX IF EXISTS artifacts_id_epoch;
DROP INDEX IF EXISTS artifacts_correlation_epoch;
DROP INDEX IF EXISTS consumptions_artifact_epoch;
"""
"""Schema 6 -> 7 (both backends): the indexes of 65,536-event epochs go."""

QUERY_INDEX_NAMES = tuple(
    line.split()[5] for line in QUERY_INDEXES.splitlines() if line.startswith("CREATE INDEX")
)
"""The names of the indexes above (benchmarks and upgrade tests drop them)."""

# No primary keys (schema 5): each row is derived once from one event (an artifact is
# published once, a task scheduled once: deterministic ids, tests/test_crash.py), and
# a key on (run_id, id) was a random-key index on the hot path.
_TABLES = """
CREATE TABLE IF NOT EXISTS artifact_tags (
    run_id TEXT NOT NULL,
    id     TEXT NOT NULL,
    tag    TEXT NOT NULL,
    seq    {big} NOT NULL
);
CREATE TABLE IF NOT EXISTS consumptions (
    run_id      TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    agent       TEXT NOT NULL,
    seq         {big} NOT NULL,
    ts          {real} NOT NULL
);
"""

SQLITE_QUERY_TABLES = _TABLES.format(big="INTEGER", real="REAL")
"""The new tables for SQLite (the artifacts columns are in its ``DDL``)."""

PG_QUERY_DDL = (
    "DROP INDEX IF EXISTS artifacts_type;\n"
    + "".join(
        f"ALTER TABLE artifacts ADD COLUMN IF NOT EXISTS {name} {pg} "
        f"{'NOT NULL ' if default != 'NULL' else ''}DEFAULT {default};\n"
        for name, _, pg, default in ARTIFACT_COLUMNS
    )
    + _TABLES.format(big="BIGINT", real="DOUBLE PRECISION")
    + PG_QUERY_INDEXES
)
"""PostgreSQL migration 2 -> 3 (a fresh database runs it after creating schema 1)."""


# A digest column is indexed behind its row's epoch (``EPOCH``): a lookup
# names every epoch it may be in. Spelled as the index spells it, with the table alias.
_EPOCH = f"({{}}.seq >> {EPOCH_BITS})"


def epoch_in(alias: str, epochs: Sequence[int]) -> tuple[str, list[object]]:
    """``(alias.seq >> EPOCH_BITS) IN (...)`` for ``epochs``, and its arguments
    (``= ?`` for one: SQLite's planner, without statistics, then prefers that index)."""
    expr = _EPOCH.format(alias)
    if len(epochs) == 1:
        return f"{expr} = ?", list(epochs)
    return f"{expr} IN ({','.join('?' * len(epochs))})", list(epochs)


def by_key(
    run_id: str | None, column: str, epochs: Sequence[int], bounded: bool = False, keys: int = 1
) -> str:
    """The condition on ``artifacts a`` that ``a.<column>`` (a digest: ``id`` or
    ``correlation_id``) equals the next argument (one of the next ``keys`` arguments),
    after the arguments of ``epochs``; with ``bounded``, and that ``a.seq`` is at most
    the argument after it.

    In one run, the matching seqs come from the epoch index in a subquery and are
    probed in the run's index (the planner would otherwise walk the run's index and
    test each row). A bound on the seq goes inside that subquery, never beside it:
    next to ``a.run_id = ?``, an outer ``a.seq <= ?`` made SQLite walk the run's
    index up to the bound (a range it took for cheaper than the probes) and test
    every row against the subquery's list: 18 ms a lookup at 20,000 artifacts, 0.07
    inside (issue 14: a resume reads the views its pending work pins one id at a
    time). Across runs, the epoch index is read directly.
    """
    # Several keys in one statement, each an index probe: a task's context of 5,000
    # artifacts was 5,000 statements, 1.7 s of round trips on PostgreSQL.
    eq = "= ?" if keys == 1 else f"IN ({','.join('?' * keys)})"
    if run_id is None:
        cond = f"{epoch_in('a', epochs)[0]} AND a.{column} {eq}"
        return f"{cond} AND a.seq <= ?" if bounded else cond
    cond = epoch_in("k", epochs)[0]
    bound = " AND k.seq <= ?" if bounded else ""
    return f"a.seq IN (SELECT k.seq FROM artifacts k WHERE {cond} AND k.{column} {eq}{bound})"


def visibility_columns(vis: dict[str, Any] | None) -> tuple[str, str | None]:
    """``vis_kind`` and ``visibility`` (JSON, None when public) of an artifact."""
    kind = str(vis.get("kind", "public")) if vis else "public"
    return kind, None if kind == "public" or vis is None else to_json(vis).decode()


@dataclass(slots=True)
class QueryRows:
    """Rows for the query read models derived from one group of committed events."""

    tags: list[tuple[Any, ...]] = field(default_factory=list)
    consumptions: list[tuple[Any, ...]] = field(default_factory=list)
    released: list[tuple[Any, ...]] = field(default_factory=list)


def query_model_rows(events: list[Event]) -> QueryRows:
    """The ``artifact_tags``, ``consumptions`` and release rows of ``events`` (seqs set)."""
    rows = QueryRows()
    for e in events:
        kind = e.kind
        if kind is _PUBLISHED:
            a = body_as(e, ArtifactPublished)
            tags = a.get("tags")
            if tags:
                rows.tags.extend((e.run_id, a["id"], t, e.seq) for t in set(tags))
        elif kind is _SCHEDULED:
            t = body_as(e, TaskScheduled)
            rows.consumptions.extend(
                (e.run_id, aid, t["task_id"], t["agent"], e.seq, e.ts) for aid in t["inputs"]
            )
        elif kind is _RELEASED:
            rows.released.append((e.run_id, body_as(e, ArtifactReleased)["artifact_id"]))
    return rows


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one backend spells the statements (placeholder, insert-or-ignore)."""

    p: str
    ignore: str  # between INSERT and INTO
    on_conflict: str  # after VALUES (...)

    def insert(self, table: str, columns: str) -> str:
        n = columns.count(",") + 1
        marks = ",".join([self.p] * n)
        return f"INSERT {self.ignore}INTO {table}({columns}) VALUES ({marks}){self.on_conflict}"


SQLITE = Dialect("?", "OR IGNORE ", "")
POSTGRES = Dialect("%s", "", " ON CONFLICT DO NOTHING")


_CONSUMPTION_COLUMNS = "run_id, artifact_id, task_id, agent, seq, ts"


def statements(rows: QueryRows, d: Dialect) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The statements (with their rows) that apply ``rows``; empty ones are left out."""
    # Only an artifact with a non-public visibility is ever released: the partial index
    # artifacts_restricted finds it among the run's few such artifacts (ids have no index
    # of their own but by epoch).
    release = (
        f"UPDATE artifacts SET released = 1 WHERE run_id = {d.p} AND vis_kind <> 'public' "
        f"AND id = {d.p}"
    )
    pairs = (
        (d.insert("artifact_tags", "run_id, id, tag, seq"), rows.tags),
        (d.insert("consumptions", _CONSUMPTION_COLUMNS), rows.consumptions),
        (release, rows.released),
    )
    return [(sql, args) for sql, args in pairs if args]
