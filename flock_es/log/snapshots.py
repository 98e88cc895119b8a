"""Folding a run from its latest snapshot instead of from event 0.

``fold_run`` takes the newest stored snapshot at or before the target seq
(``flock_es.projection.snapshot``), checks it against the log (same run, the
same number of events up to its seq) and folds only the events after it. A
compact fold (resume) decodes only the snapshot's compact state; a full one
(``show --at``) rebuilds the full state from the snapshot's chain (``chain``:
the links it follows, found from their headers alone, read one at a time). A
missing, stale or damaged snapshot or link is never an error: the run is folded
from an older snapshot (one before the damage) or from the log, which is the truth. ``save_snapshot`` stores a new one once
enough events were folded past the last; a failure to store it (a read-only
medium, a full disk) is ignored, as a snapshot is only a shortcut.

Example::

    with store.reader() as log:
        state, folded = fold_run(log, run_id)
    save_snapshot(store, state, folded)
"""

from __future__ import annotations

from collections.abc import Iterator

from flock_es.errors import DatabaseError
from flock_es.log.ports import EventReader, EventStore
from flock_es.log.unfit_event import FOLD_FAULTS, unfit_event
from flock_es.projection.fold import apply, compacted
from flock_es.projection.snapshot import (
    SNAPSHOT_EVERY,
    ArtifactSink,
    collector_paused,
    decode,
    encode,
    intact_links,
    rebuild,
)
from flock_es.projection.snapshot_codec import HEADER_BYTES, parse_link
from flock_es.projection.state import RunState

__all__ = ["chain", "fold_run", "save_snapshot", "start_state"]

_HEADERS = (
    f"SELECT seq, substr(state, 1, {HEADER_BYTES}) FROM snapshots "
    "WHERE run_id = ? AND seq <= ? ORDER BY seq"
)


def chain(reader: EventReader, run_id: str, seq: int) -> list[int] | None:
    """The seqs of the links the snapshot of ``run_id`` at ``seq`` follows, from the
    chain's first to it, read from their headers; None if one is missing or not of
    this fold (the run's whole state can then only be folded from the log)."""
    try:
        rows = reader.query(_HEADERS, (run_id, seq))
    except Exception:  # no table, or a backend that cannot cut a blob: no chain
        return None
    links = {
        int(str(s)): parse_link(bytes(h), head_only=True)
        for s, h in rows
        if isinstance(h, bytes | memoryview)
    }
    out: list[int] = []
    at, events = seq, None
    while True:
        link = links.get(at)
        if link is None or link.seq != at or (events is not None and link.events != events):
            return None
        out.append(at)
        if (link.prev_seq, link.prev_events) == (0, 0):
            return out[::-1]
        if link.prev_seq >= at:
            return None
        at, events = link.prev_seq, link.prev_events


def _links(reader: EventReader, run_id: str, seqs: list[int]) -> Iterator[bytes | None]:
    """The bytes of the snapshots at ``seqs``, one at a time (None for one gone)."""
    for seq in seqs:
        try:
            found = reader.snapshot(run_id, seq)
        except DatabaseError:
            found = None
        yield found[1] if found is not None and found[0] == seq else None


def start_state(
    reader: EventReader,
    run_id: str,
    until: int | None = None,
    compact: bool = False,
    chained: bool = False,
    artifacts: ArtifactSink | None = None,
) -> RunState:
    """The state of the newest trustworthy snapshot of ``run_id`` at or before ``until``,
    or an empty state (fold from event 0). ``compact``: only what decisions need, the
    rest of the snapshot never built (``decode``); ``chained`` (with ``compact``): only
    a snapshot whose chain is whole, that a checkpoint job can add a link to, whose
    artifact views it takes as they are read (``artifacts``: ``decode``).

    A reader (not ``chained``) whose newest snapshot is damaged starts from an older
    one: for a compact state, one of the ``_OLDER`` links before it; for a full state,
    the last link of its chain before the first damaged one (``intact_links``)."""
    found = _newest(reader, run_id, until)
    if found is None:
        return RunState()
    seq, data = found
    if compact:
        state = decode(data, compact=True, artifacts=artifacts)
        del data, found
        if chained and state is not None and chain(reader, run_id, seq) is None:
            return RunState()  # a job starts a new chain rather than extend a broken one
        if state is None and not chained:  # (a job's sink has views of the failed decode)
            seq, state = _older_compact(reader, run_id, seq)
    else:
        seqs = None if parse_link(data) is None else chain(reader, run_id, seq)
        state = None if seqs is None else rebuild(_chained(reader, run_id, seqs, data))
        del data, found  # the state is built: its bytes (a link's, up to SEGMENT_BYTES) go
        if state is None and seqs:
            seq, state = _before_damage(reader, run_id, seqs)
    if state is None or state.run_id != run_id or state.last_seq != seq:
        return RunState()
    rows = reader.query("SELECT count(*) FROM events WHERE run_id = ? AND seq <= ?", (run_id, seq))
    if not rows or int(str(rows[0][0])) != state.events:
        return RunState()  # not the fold of this log's prefix (the file was rewritten)
    return state


_OLDER = 3
"""Older snapshots a compact reader tries when the newest is damaged (each a decode)."""


def _newest(reader: EventReader, run_id: str, until: int | None) -> tuple[int, bytes] | None:
    try:
        return reader.snapshot(run_id, until)
    except DatabaseError:
        return None


def _older_compact(reader: EventReader, run_id: str, seq: int) -> tuple[int, RunState | None]:
    """The compact state of the newest intact snapshot among the ``_OLDER`` before ``seq``."""
    for _ in range(_OLDER):
        found = _newest(reader, run_id, seq - 1)
        if found is None:
            break
        seq, state = found[0], decode(found[1], compact=True)
        if state is not None:
            return seq, state
    return seq, None


def _before_damage(
    reader: EventReader, run_id: str, seqs: list[int]
) -> tuple[int, RunState | None]:
    """The full state at the last link of the chain ``seqs`` before its first damaged
    one (the damaged link's own compact state may be what failed: one before it)."""
    whole = min(intact_links(_links(reader, run_id, seqs)), len(seqs) - 1)
    if whole == 0:
        return 0, None
    return seqs[whole - 1], rebuild(_links(reader, run_id, seqs[:whole]))


def _chained(
    reader: EventReader, run_id: str, seqs: list[int], last: bytes
) -> Iterator[bytes | None]:
    """The links at ``seqs``, the last of which is ``last`` (already read)."""
    yield from _links(reader, run_id, seqs[:-1])
    yield last


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
        e = None
        try:  # around the loop, not in it: a healthy log's fold pays nothing for it
            for e in reader.iter_events(run_id, after=state.last_seq, until=until):
                apply(state, e)
                folded += 1
        except FOLD_FAULTS as exc:
            if (damaged := unfit_event(reader.path, e)) is None:
                raise
            raise damaged from exc
    return state, folded


def save_snapshot(
    store: EventStore, state: RunState, folded: int, at_least: int | None = None
) -> bool:
    """Store a snapshot of the full ``state`` if ``folded`` (at least ``at_least``, by
    default ``SNAPSHOT_EVERY``) events were folded past the last one (a chain's first
    link: ``encode``; a compact state is linked by a checkpoint job, never here)."""
    least = SNAPSHOT_EVERY if at_least is None else max(at_least, 1)
    if folded < least or not state.run_id or not state.last_seq or state.compact:
        return False
    try:
        store.save_snapshot(state.run_id, state.last_seq, encode(state))
    except DatabaseError:
        return False
    return True
