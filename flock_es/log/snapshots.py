"""Folding a run from its latest snapshot instead of from event 0.

``fold_run`` takes the newest stored snapshot at or before the target seq
(``flock_es.projection.snapshot``), checks it against the log (same run, the
same number of events up to its seq) and folds only the events after it. A
missing, stale or damaged snapshot is never an error: the run is folded from
the log, which is the truth. ``save_snapshot`` stores a new one once enough
events were folded past the last; a failure to store it (a read-only medium,
a full disk) is ignored, as a snapshot is only a shortcut.

Example::

    with store.reader() as log:
        state, folded = fold_run(log, run_id)
    save_snapshot(store, state, folded)
"""

from __future__ import annotations

from flock_es.errors import DatabaseError
from flock_es.log.ports import EventReader, EventStore
from flock_es.projection.fold import apply, compacted
from flock_es.projection.snapshot import SNAPSHOT_EVERY, collector_paused, decode, encode
from flock_es.projection.state import RunState

__all__ = ["fold_run", "save_snapshot", "start_state"]


def start_state(
    reader: EventReader, run_id: str, until: int | None = None, compact: bool = False
) -> RunState:
    """The state of the newest trustworthy snapshot of ``run_id`` at or before ``until``,
    or an empty state (fold from event 0); ``compact``: only what decisions need, the
    rest of the snapshot never built (``decode``)."""
    try:
        found = reader.snapshot(run_id, until)
    except DatabaseError:
        found = None
    if found is None:
        return RunState()
    seq, data = found
    state = decode(data, compact=compact)
    if state is None or state.run_id != run_id or state.last_seq != seq:
        return RunState()
    if state.compact and not compact:
        return RunState()  # a compact state is no snapshot: it forgot completed tasks
    rows = reader.query("SELECT count(*) FROM events WHERE run_id = ? AND seq <= ?", (run_id, seq))
    if not rows or int(str(rows[0][0])) != state.events:
        return RunState()  # not the fold of this log's prefix (the file was rewritten)
    return state


def fold_run(
    reader: EventReader, run_id: str, until: int | None = None, compact: bool = False
) -> tuple[RunState, int]:
    """The state of ``run_id`` up to seq ``until`` (all of it if None), from its latest
    snapshot; also how many events were folded past that snapshot.

    ``compact``: only what decisions need (``fold.compacted``): only the compact
    part of the snapshot is decoded, and the completed tasks of the tail are never
    held (resume's fold, issue 14). A compact state is never saved."""
    with collector_paused():
        state = start_state(reader, run_id, until, compact=compact)
        if compact:
            compacted(state)
        folded = 0
        for e in reader.iter_events(run_id, after=state.last_seq, until=until):
            apply(state, e)
            folded += 1
    return state, folded


def save_snapshot(
    store: EventStore, state: RunState, folded: int, at_least: int | None = None
) -> bool:
    """Store a snapshot of ``state`` if ``folded`` (at least ``at_least``, by default
    ``SNAPSHOT_EVERY``) events were folded past the last one (never a compact state)."""
    least = SNAPSHOT_EVERY if at_least is None else max(at_least, 1)
    if folded < least or not state.run_id or not state.last_seq or state.compact:
        return False
    try:
        store.save_snapshot(state.run_id, state.last_seq, encode(state))
    except DatabaseError:
        return False
    return True
