"""The rows a SQLite commit writes: the events and the read models derived from them.

The writer (``log/writer.py``) calls ``write_events`` inside its transaction;
``rebuild_read_models`` derives the same read-model rows from the events alone
(schema upgrades, and the test that proves read models hold nothing the log
does not); PostgreSQL's writer shares ``read_model_rows``. Bodies are JSON made
by ``dumps``.

Example::

    con.execute("BEGIN IMMEDIATE")
    write_events(con, events, last_seq)  # assigns e.seq to each event
    con.execute("COMMIT")
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pydantic_core import PydanticSerializationError, to_json

from flock_es.domain.events import (
    ArtifactPublished,
    Event,
    EventKind,
    RunFinished,
    RunResumed,
    RunStarted,
    body_as,
)
from flock_es.errors import UnstorableEvent
from flock_es.log import query_models as qm
from flock_es.log import run_counters as rc
from flock_es.log.schema import PRAGMAS, check_database
from flock_es.log.sqlite_rows import chunk_rows, insert_flat
from flock_es.log.sqlite_rows import rows_per_statement as per

__all__ = [
    "ARTIFACTS_HEAD",
    "ARTIFACT_COLS",
    "CONSUMPTIONS_FROM_EVENTS",
    "EVENTS_HEAD",
    "FINISH_RUN",
    "INSERT_RUN",
    "PAID_KINDS",
    "PROCESS_RUN",
    "PUBLIC_FROM_EVENTS",
    "TOUCH_RUN",
    "ReadModelRows",
    "artifact_row",
    "dumps",
    "event_text",
    "read_model_rows",
    "rebuild_in_transaction",
    "rebuild_read_models",
    "write_events",
]

# Heads of multi-row inserts (``sqlite_rows.insert_flat`` adds the VALUES).
# The run id first: the writer binds it once per statement (``insert_flat``'s ``shared``).
EVENTS_HEAD = "INSERT INTO events(run_id, seq, kind, ts, v, task_id, body)"
ARTIFACTS_HEAD = (
    "INSERT INTO artifacts(seq, id, run_id, type, produced_by, ts, "
    "task_id, correlation_id, vis_kind, visibility)"
)
ARTIFACT_COLS = 10
"""Values per ``artifacts`` row (``artifact_row``)."""
_INSERT_ARTIFACT = f"{ARTIFACTS_HEAD} VALUES ({','.join('?' * ARTIFACT_COLS)})"
# The public artifacts' and the consumptions' rows of the events a unit just wrote
# (seqs ?1 to ?2), derived by SQLite from the event rows: the same values
# ``artifact_row`` and ``query_model_rows`` take from the bodies (which are the
# rows' JSON), made in the writer's thread while it holds no GIL. Made and bound in
# Python, they cost the thread about 13 values a run (most of them text, each a copy
# SQLite allocates) and their rows' building, in the GIL the loop's thread needs:
# some 15,000 instructions per agent run of workload (b) (issue 14). A public
# artifact is one whose visibility is absent, null or exactly {"kind":"public"}
# (``_event_chunks`` writes the others' rows itself), as the body's JSON spells it.
# json_each reads the inputs' own JSON, which json_extract takes from the body it
# parsed for the agent's name: json_each over the body parsed every body twice.
PUBLIC_FROM_EVENTS = (
    "INSERT INTO artifacts(run_id, seq, id, type, produced_by, ts, task_id, correlation_id) "
    "SELECT run_id, seq, json_extract(body, '$.id'), json_extract(body, '$.type'), "
    "coalesce(json_extract(body, '$.produced_by'), 'external'), ts, "
    "json_extract(body, '$.task_id'), json_extract(body, '$.correlation_id') "
    "FROM events WHERE seq BETWEEN ?1 AND ?2 AND kind = 'artifact.published' "
    """AND coalesce(json_extract(body, '$.visibility'), '{"kind":"public"}') = '{"kind":"public"}'"""
)
CONSUMPTIONS_FROM_EVENTS = (
    "INSERT OR IGNORE INTO consumptions(run_id, artifact_id, task_id, agent, seq, ts) "
    "SELECT e.run_id, j.value, e.task_id, json_extract(e.body, '$.agent'), e.seq, e.ts "
    "FROM events e, json_each(json_extract(e.body, '$.inputs')) j "
    "WHERE e.seq BETWEEN ?1 AND ?2 AND e.kind = 'task.scheduled'"
)
INSERT_RUN = (
    "INSERT OR REPLACE INTO runs(run_id, program, model, started_at, status, parent_run, "
    "fork_seq, first_seq, last_seq, events) VALUES (?,?,?,?,?,?,?,?,?,0)"
)
FINISH_RUN = "UPDATE runs SET finished_at=?, status=? WHERE run_id=?"
TOUCH_RUN = rc.TOUCH_RUN
PROCESS_RUN = "UPDATE runs SET pid=?, host=? WHERE run_id=?"

# Each kind's text, looked up once per event row (an enum's .value is a property call).
_KIND_TEXT = {k: k.value for k in EventKind}
# Enum members bound to module globals for the hot paths: in Python 3.11 ``Kind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_RUN_STARTED, _RUN_FINISHED = EventKind.RUN_STARTED, EventKind.RUN_FINISHED
_RUN_RESUMED, _PUBLISHED = EventKind.RUN_RESUMED, EventKind.ARTIFACT_PUBLISHED
_SCHEDULED = EventKind.TASK_SCHEDULED

# The visibility of a public artifact (most of them), as ``artifact_row`` writes it.
_PUBLIC = {"kind": "public"}

PAID_KINDS = frozenset({EventKind.MODEL_CALLED, EventKind.TOOL_CALLED})
"""Kinds whose commit carries something paid for; in ``full`` durability it is fsynced."""


def dumps(body: dict[str, Any]) -> str:
    # pydantic's Rust serialiser: several times faster than json.dumps on event bodies.
    # orjson writes the same text 3x faster still on small bodies (the writer's
    # instructions per run of workload (b): 139,195 against 143,558), but it asks for
    # about 8x a body's size while it writes (8.3 MB for a 1 MB body), which a bounded
    # fork's peak showed twice over: tried and left out (issue 14).
    return to_json(body).decode()


def event_text(e: Event) -> str:
    """``e``'s body as the log stores it, or ``UnstorableEvent`` saying which event
    holds what JSON text cannot (a payload's are refused before: ``json_values``)."""
    try:
        return to_json(e.body).decode()
    except PydanticSerializationError as exc:
        raise _unstorable(e, exc) from None


def _unstorable(e: Event, exc: Exception) -> UnstorableEvent:
    """The error for event ``e`` whose body did not serialise (``exc``)."""
    body = e.body
    who = f" of task {body['task_id']}" if body.get("task_id") else ""
    agent = f" (agent {body['agent']!r})" if isinstance(body.get("agent"), str) else ""
    why = str(exc)
    if "surrogate" in why:
        why = "a lone surrogate, text that is not UTF-8 (a file name os.fsdecode read, say)"
    return UnstorableEvent(f"{e.kind}{who}{agent} holds what the log cannot store: {why}")


class ReadModelRows(NamedTuple):
    """The read-model rows of some committed events (``read_model_rows``)."""

    runs: list[tuple[Any, ...]]  # INSERT_RUN
    finished: list[tuple[Any, ...]]  # FINISH_RUN (a resume sets the run running again)
    arts: list[tuple[Any, ...]]  # the artifacts' rows
    touch: list[tuple[Any, ...]]  # TOUCH_RUN: each run's counts (``run_counters``)
    procs: list[tuple[Any, ...]]  # PROCESS_RUN: the process that started or resumed it


def read_model_rows(events: list[Event]) -> ReadModelRows:
    """Rows for the read models derived from committed ``events`` (seq assigned)."""
    out = ReadModelRows([], [], [], [], [])
    _run_rows(events, out)
    counts: dict[str, list[Any]] = {}
    for e in events:
        if e.kind is _PUBLISHED:
            out.arts.append(artifact_row(e, body_as(e, ArtifactPublished)))
        c = counts.get(e.run_id)
        if c is None:
            c = counts[e.run_id] = rc.new_counts()
        rc.count_event(e, c)
    out.touch.extend(rc.touch_rows(counts))
    return out


def _run_rows(events: list[Event], out: ReadModelRows) -> None:
    """Add the runs' rows of ``events`` to ``out`` (started, finished, resumed: ``runs``,
    ``finished``, ``procs``)."""
    for e in events:
        # Each body is read through its kind's definition: mypy checks these keys.
        kind = e.kind
        if kind is _RUN_STARTED:
            rs = body_as(e, RunStarted)
            out.runs.append(
                (
                    e.run_id,
                    rs.get("program"),
                    rs["model"],
                    e.ts,
                    "running",
                    rs.get("parent_run"),
                    rs.get("fork_seq"),
                    e.seq,
                    e.seq,
                )
            )
            out.procs.append((rs.get("pid"), rs.get("host"), e.run_id))
        elif kind is _RUN_FINISHED:
            out.finished.append((e.ts, body_as(e, RunFinished)["status"], e.run_id))
        elif kind is _RUN_RESUMED:
            out.finished.append((None, "running", e.run_id))
            rr = body_as(e, RunResumed)
            out.procs.append((rr.get("pid"), rr.get("host"), e.run_id))


def write_events(conn: sqlite3.Connection, events: list[Event], last_seq: int) -> None:
    """Insert ``events`` after ``last_seq`` (assigning their seqs) with their read-model
    rows, inside the caller's ``BEGIN IMMEDIATE`` transaction."""
    # The event rows are made as SQLite takes them, a chunk at a time, never held as a
    # list: a unit of a large publish (900,000 events) held its rows and their JSON at
    # once, a third of the run's peak memory (issue 14). The same pass collects the
    # rows of the rare read models (one loop over the events, not three: issue 14).
    # Each chunk is one run's, its run id bound once (``insert_flat``'s ``shared``).
    side = _Side()
    chunks = _event_chunks(events, last_seq, side, per(conn, 7))
    insert_flat(conn, EVENTS_HEAD, 7, chunks, shared=True)
    # The rare kinds (run boundaries, tags, releases) through the shared row makers,
    # in the order the statements depend on: a run's row before its counts are
    # touched, an artifact's row before its release. Only the runs' rows: the loop
    # made the artifacts' (or SQLite derives them), and ``count_rare`` counts these.
    rare = None
    if side.others:
        rare = ReadModelRows([], [], [], [], [])
        _run_rows(side.others, rare)
        if rare.runs:
            conn.executemany(INSERT_RUN, rare.runs)
        for e in side.others:  # the counts of the rare kinds (the loop counted the rest)
            rc.count_rare(e, side.runs[e.run_id])
    span = (last_seq + 1, last_seq + len(events))
    if side.published:
        conn.execute(PUBLIC_FROM_EVENTS, span)
    if side.restricted:
        n = ARTIFACT_COLS
        insert_flat(conn, ARTIFACTS_HEAD, n, chunk_rows(side.restricted, n, per(conn, n)))
        side.restricted = []
    if rare is not None and rare.finished:
        conn.executemany(FINISH_RUN, rare.finished)
    if rare is not None and rare.procs:
        conn.executemany(PROCESS_RUN, rare.procs)
    conn.executemany(TOUCH_RUN, rc.touch_rows(side.runs))
    if side.scheduled:
        conn.execute(CONSUMPTIONS_FROM_EVENTS, span)
    if side.others:
        for sql, args in qm.statements(qm.query_model_rows(side.others), qm.SQLITE):
            conn.executemany(sql, args)


class _Side:
    """What ``_event_chunks`` notes on its way through a unit: whether it has artifacts
    (``published``: their rows are derived from the events, ``PUBLIC_FROM_EVENTS``)
    and schedules (``scheduled``: consumptions), the rows of restricted artifacts
    (whole rows, flat: rare), the events of rare kinds, and each run's counts."""

    __slots__ = ("others", "published", "restricted", "runs", "scheduled")

    def __init__(self) -> None:
        self.published = False
        self.scheduled = False
        self.restricted: list[Any] = []
        self.others: list[Event] = []
        self.runs: dict[str, list[Any]] = {}  # run id -> its counts (``run_counters``)


# Kinds whose read-model rows ``read_model_rows``/``query_model_rows`` make, and those
# ``run_counters.count_rare`` counts (rare ones).
_OTHER_KINDS = frozenset(
    {_RUN_STARTED, _RUN_FINISHED, _RUN_RESUMED, EventKind.ARTIFACT_RELEASED, *rc.RARE_KINDS}
)
_COMPLETED = EventKind.TASK_COMPLETED


def _event_chunks(
    events: list[Event], last_seq: int, side: _Side, size: int
) -> Iterator[list[Any]]:
    """The ``events`` rows, at most ``size`` at a time, flat: each chunk one run's, its
    run id first and its rows without it (seqs from ``last_seq + 1``, assigned to the
    events as made); what ``side`` notes (see ``_Side``)."""
    seq = last_seq
    kinds = _KIND_TEXT
    others, runs, restricted = side.others, side.runs, side.restricted
    published, scheduled, other_kinds, public = _PUBLISHED, _SCHEDULED, _OTHER_KINDS, _PUBLIC
    completed = _COMPLETED
    any_published = False
    # The run's counts and rows in locals while its events come (a unit is one run's):
    # added to its counts in ``runs`` when another run's event comes, and at the end.
    # Only the frequent kinds are counted here; ``count_rare`` counts the others.
    run_id: str | None = None
    counts = rc.new_counts()
    n = n_published = n_scheduled = n_completed = 0
    top = 0.0  # the latest event time
    flat: list[Any] = []
    left = size
    for e in events:
        seq += 1
        e.seq = seq
        body = e.body
        kind = e.kind
        if e.run_id != run_id:
            _add(counts, seq - 1, n, n_scheduled, n_completed, n_published, top)
            run_id, n = e.run_id, 0
            n_published = n_scheduled = n_completed = 0
            counts = runs.setdefault(run_id, rc.new_counts())
            top = counts[rc.LAST_TS]
            if len(flat) > 1:  # another run's rows: a chunk of their own
                yield flat
            flat, left = [run_id], size
        n += 1
        tid = body.get("task_id")  # Event.task_id, without a property call per event
        if tid is not None and type(tid) is not str:  # isinstance's call only then
            tid = tid if isinstance(tid, str) else None
        ts = e.ts
        if ts > top:
            top = ts
        try:
            text = to_json(body).decode()
        except PydanticSerializationError as exc:  # rare: its cost is the try's, none
            raise _unstorable(e, exc) from None
        flat += (seq, kinds[kind], ts, e.v, tid, text)
        if kind is published:
            e.size = len(text)  # what its view weighs (``Kernel.committed``)
            n_published += 1
            # A public artifact's row is derived from its event (``PUBLIC_FROM_EVENTS``,
            # which tells public ones as this does); the others' through ``artifact_row``.
            # The body through its definition by annotation (mypy checks the keys).
            a: ArtifactPublished = body  # type: ignore[assignment]
            vis = a.get("visibility")
            if vis is None or vis == public:
                any_published = True
            else:
                restricted += artifact_row(e, a)
            if body.get("tags"):
                others.append(e)
        elif kind is scheduled:
            n_scheduled += 1  # and its consumptions: ``CONSUMPTIONS_FROM_EVENTS``
        elif kind is completed:
            n_completed += 1
        elif kind in other_kinds:
            others.append(e)
        left -= 1
        if not left:
            yield flat
            flat, left = [run_id], size
    _add(counts, seq, n, n_scheduled, n_completed, n_published, top)
    side.published = any_published
    side.scheduled = any(c[rc.SCHEDULED] for c in runs.values())
    if len(flat) > 1:
        yield flat


def _add(c: list[Any], last: int, n: int, scheduled: int, done: int, arts: int, top: float) -> None:
    """Add a run's frequent counts of ``_event_chunks`` to its counts ``c``."""
    c[rc.LAST] = last
    c[rc.EVENTS] += n
    c[rc.SCHEDULED] += scheduled
    c[rc.DONE] += done
    c[rc.ARTIFACTS] += arts
    c[rc.LAST_TS] = top


def artifact_row(e: Event, a: ArtifactPublished) -> tuple[Any, ...]:
    """The ``artifacts`` read-model row of ``artifact.published`` ``e`` (seq set). Not
    its payload: the event's body holds it (schema 8), and a second copy cost the
    writer's thread a JSON dump per artifact and the file its bytes."""
    return (
        e.seq,
        a["id"],
        e.run_id,
        a["type"],
        a.get("produced_by", "external"),
        e.ts,
        a.get("task_id"),
        a.get("correlation_id"),
        *qm.visibility_columns(a.get("visibility")),
    )


def rebuild_read_models(path: Path, chunk: int = 10_000) -> int:
    """Drop and re-derive every read model (``query_models.READ_MODEL_TABLES``) from the events alone.

    Proves (and repairs) the rule that read models hold nothing the log does not.
    Returns the number of events read.
    """
    check_database(path, must_exist=True)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        for p in PRAGMAS:
            con.execute(p)
        con.execute("BEGIN IMMEDIATE")
        total = rebuild_in_transaction(con, chunk)
        con.execute("COMMIT")
    finally:
        con.close()
    return total


def rebuild_in_transaction(con: sqlite3.Connection, chunk: int = 10_000) -> int:
    """``rebuild_read_models`` inside the caller's transaction (schema upgrades use it)."""
    from flock_es.log.reader import row_to_event

    for table in qm.READ_MODEL_TABLES:
        con.execute(f"DELETE FROM {table}")
    if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'snapshots'").fetchone():
        con.execute("DELETE FROM snapshots")  # folds are taken again when next needed
    cursor, total = 0, 0
    while True:
        rows = con.execute(
            "SELECT seq, run_id, kind, ts, v, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (cursor, chunk),
        ).fetchall()
        if not rows:
            break
        events = [e for e in (row_to_event(r) for r in rows) if e is not None]
        derived = read_model_rows(events)
        con.executemany(INSERT_RUN, derived.runs)
        con.executemany(_INSERT_ARTIFACT, derived.arts)
        con.executemany(FINISH_RUN, derived.finished)
        con.executemany(PROCESS_RUN, derived.procs)
        con.executemany(TOUCH_RUN, derived.touch)
        for sql, args in qm.statements(qm.query_model_rows(events), qm.SQLITE):
            con.executemany(sql, args)
        cursor = rows[-1][0]
        total += len(rows)
    return total
