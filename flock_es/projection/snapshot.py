"""Snapshots of the folded state: where resume and ``show --at`` start folding.

A snapshot at ``seq`` is a link of a chain: the compact state at ``seq`` (what
``fold_compact.compacted`` keeps: open tasks, buffers, gates, counters, the
artifacts pending work refers to) and a segment with the views the compact fold
let go of since the link before (completed tasks with their model and tool
calls, rewritten inputs and MCP listings; artifacts nothing pending refers to),
which are final once let go of. A resume decodes only the compact state
(``decode(compact=True)``); a full state (``show --at``, ``fold_run``) is the
chain's segments from its first link plus the last link's compact state
(``rebuild``), in the order a fold from event 0 has it. A checkpoint job
(``LinkFold``) so holds what the compact fold holds plus one chunk of views,
and stores bytes linear in the run's length, never its whole state twice.

A snapshot is a read model and never the source of truth: ``decode`` and
``rebuild`` accept only bytes they can vouch for (their own header, this
flock-es version and fold, classes of the state only, a chain whose every link
is present) and return None for anything else: damaged, from another version,
foreign, or with a link missing. The caller then folds from the log, as it
would with no snapshot at all.

Example::

    data = encode(state)                 # a full state; stored with its seq
    restored = decode(data)              # None: fold from event 0 instead
    assert restored == state
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from flock_es.projection.fold_compact import compacted
from flock_es.projection.snapshot_codec import (
    HEADER_BYTES,
    Compressing,
    Decompressing,
    Link,
    StateUnpickler,
    collector_paused,
    dump,
    fingerprint,
    pack_link,
    parse_link,
)
from flock_es.projection.state import ArtifactView, RunState

__all__ = [
    "SNAPSHOT_EVERY",
    "VIEWS",
    "ArtifactSink",
    "Segment",
    "collector_paused",
    "decode",
    "encode",
    "fingerprint",
    "intact_links",
    "link_bytes",
    "rebuild",
    "shallow",
]

SNAPSHOT_EVERY = 20_000
"""Events folded past the latest snapshot before a new one is worth writing."""

VIEWS = ("artifacts", "tasks", "calls", "tool_calls", "rewritten_inputs", "mcp_tools")
"""The fields whose entries a compact state lets go of (a segment holds those)."""
# Their views carry the seq of the event that added them, the order a full fold has
# them in; the others' entries do not, so each link records their new keys in order.
_BY_SEQ = ("artifacts", "tasks", "calls", "tool_calls")
_IN_ORDER = ("rewritten_inputs", "mcp_tools")
_CHUNK = 2048
"""Views a segment holds before it pickles and compresses them (and a compact state's
views pickled in one piece, ``_dump_core``)."""
ArtifactSink = Callable[[list[tuple[str, ArtifactView]]], list[tuple[str, ArtifactView]]]
"""Takes a chunk of a compact state's artifact views as they are read, returns those the
state is to hold."""
_SPLIT = ("artifacts", "tasks")
"""The fields of a compact state that may hold many views (the artifacts a large
publish pins until they are decided, the tasks it schedules)."""
_COUNTED = ("compact", "finished", "prune_at", "finished_busy", "finished_spans")
_COUNTED_TOO = ("finished_active", "spans_floor", "held_chars", "prune_chars")
"""The fields only a compact state counts in: a full fold leaves them as they start."""


class Segment:
    """The views a compact fold let go of since the last link, compressed in chunks of
    ``_CHUNK``: only the compressed bytes and one chunk of views are held."""

    def __init__(self) -> None:
        self.out = Compressing()
        self.pending: dict[str, list[tuple[Any, Any]]] = {f: [] for f in VIEWS}
        self.held = 0
        # The keys of ``_IN_ORDER`` fields added since the last link, in the order added.
        self.order: dict[str, list[Any]] = {f: [] for f in _IN_ORDER}

    @property
    def size(self) -> int:
        """Bytes pickled so far (compressed, they are a fraction of it)."""
        return self.out.fed

    def add(self, field: str, key: Any, view: Any) -> None:
        """``view`` (under ``key`` in ``field``) left the compact state: it is final."""
        self.pending[field].append((key, view))
        self.held += 1
        if self.held >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        """Pickle and compress the views held, and let go of them."""
        for field, items in self.pending.items():
            if items:
                dump(self.out, (field, items))
                self.pending[field] = []
        self.held = 0

    def close(self) -> bytes:
        """The segment's bytes: its chunks, then the order of the keys added."""
        self.flush()
        dump(self.out, ("", self.order))
        return self.out.getvalue()


def link_bytes(
    core: RunState,
    segment: Segment,
    prev_seq: int,
    prev_events: int,
    artifacts: Iterable[tuple[str, ArtifactView]] | None = None,
) -> bytes:
    """A checkpoint job's snapshot: the compact state ``core`` (plain dicts; its artifact
    views ``artifacts`` if given, read as they are written), the views let go of since
    the link at ``prev_seq`` (0: from the empty state) and its header."""
    return _link(core, segment, prev_seq, prev_events, False, artifacts)


def _link(
    core: RunState,
    segment: Segment,
    prev_seq: int,
    prev_events: int,
    whole: bool,
    artifacts: Iterable[tuple[str, ArtifactView]] | None = None,
) -> bytes:
    out = Compressing()
    with collector_paused():
        _dump_core(out, core, core.artifacts.items() if artifacts is None else artifacts)
        head = out.getvalue()
        tail = segment.close()
    link = Link(core.last_seq, core.events, prev_seq, prev_events, len(head), whole)
    return b"".join((pack_link(link), head, tail))


def shallow(state: RunState) -> RunState:
    """A copy of ``state`` that shares its views, in plain dicts of its own (``VIEWS``),
    and a list of spans of its own."""
    return dataclasses.replace(
        state,
        artifacts=dict(state.artifacts),
        tasks=dict(state.tasks),
        calls=dict(state.calls),
        tool_calls=dict(state.tool_calls),
        rewritten_inputs=dict(state.rewritten_inputs),
        mcp_tools=dict(state.mcp_tools),
        finished_spans=list(state.finished_spans),  # compacted() adds to it
    )


def _core(state: RunState) -> RunState:
    """``compacted`` of a copy of ``state`` that shares its views (only the dicts a
    compaction edits are copied): what a resume keeps of it."""
    return compacted(shallow(state))


def encode(state: RunState) -> bytes:
    """The bytes of a snapshot of the full state ``state``: the first link of a chain,
    whose segment lists every view in ``state``'s order (its compact part for a resume).
    """
    if state.compact:
        raise ValueError("a compact state let go of views: only LinkFold links it")
    segment = Segment()
    with collector_paused():
        for field in VIEWS:
            for key, view in getattr(state, field).items():
                segment.add(field, key, view)
        segment.order = {f: list(getattr(state, f)) for f in _IN_ORDER}
        return _link(_core(state), segment, 0, 0, whole=True)


def _dump_core(
    out: Compressing, core: RunState, artifacts: Iterable[tuple[str, ArtifactView]]
) -> None:
    """Pickle ``core`` into ``out``: the state without its ``_SPLIT`` views, then those in
    chunks (its artifacts: ``artifacts``), each a pickle of its own. A pickler keeps every
    object it wrote (its memo, and with it the field tuple of every view) until it is
    done: a pending publish of 100,000 artifacts would cost tens of MB more to encode."""
    dump(out, dataclasses.replace(core, artifacts={}, tasks={}))
    for field, views in (("artifacts", artifacts), ("tasks", core.tasks.items())):
        entries = iter(views)
        while chunk := list(itertools.islice(entries, _CHUNK)):
            dump(out, (field, chunk))
    dump(out, ("", None))


def _load_core(
    data: memoryview, link: Link, artifacts: ArtifactSink | None = None
) -> RunState | None:
    """The compact state of the snapshot ``data`` (whose header is ``link``), if intact;
    ``artifacts`` takes its artifact views as they are read (it returns those the state
    is to hold)."""
    stream = Decompressing(data[HEADER_BYTES : HEADER_BYTES + link.core_len])
    core = StateUnpickler(stream).load()
    if not isinstance(core, RunState) or not core.compact:
        return None
    while True:
        field, entries = StateUnpickler(stream).load()
        if field == "":
            break
        if field not in _SPLIT:
            return None
        if field == "artifacts" and artifacts is not None:
            entries = artifacts(entries)
        getattr(core, field).update(entries)
    if not stream.complete() or (core.last_seq, core.events) != (link.seq, link.events):
        return None
    # The undecided ids as the same strings as their views' ids (pickled apart): one copy.
    arts = core.artifacts
    core.undecided = {arts[a].id if a in arts else a: at for a, at in core.undecided.items()}
    return core


def decode(
    data: bytes | memoryview | None, compact: bool = False, artifacts: ArtifactSink | None = None
) -> RunState | None:
    """The state in ``data``, or None if it is not a current, intact snapshot.

    ``compact``: only what decisions need (``compacted`` of the full state), the
    segment checked but never built; its artifact views handed to ``artifacts`` as they
    are read, if given (a checkpoint job parks them: ``snapshot_links``). Else the full
    state, which one snapshot holds only as a chain's first link (``encode``'s); for a
    later one, ``rebuild``."""
    if data is None:
        return None
    raw = memoryview(data).cast("B")
    link = parse_link(raw)
    if link is None:
        return None
    if not compact:
        return rebuild([raw]) if (link.prev_seq, link.prev_events) == (0, 0) else None
    try:
        with collector_paused():
            core = _load_core(raw, link, artifacts)
            intact = Decompressing(raw[HEADER_BYTES + link.core_len :]).drained()
    except Exception:  # damaged bytes of any kind: the log is the truth, fold it
        return None
    return core if intact else None


def rebuild(links: Iterable[bytes | memoryview | None]) -> RunState | None:
    """The full state at the last of ``links`` (a chain from its first link, in order):
    every segment's views and the last link's compact state, in a full fold's order;
    None if a link is missing (None), damaged, stale or not the next of the chain."""
    found: dict[str, dict[Any, Any]] = {f: {} for f in VIEWS}
    order: dict[str, list[Any]] = {f: [] for f in _IN_ORDER}
    prev, resort, last = (0, 0), False, None
    try:
        with collector_paused():
            for data in links:
                raw = None if data is None else memoryview(data).cast("B")
                link = None if raw is None else parse_link(raw)
                if raw is None or link is None or (link.prev_seq, link.prev_events) != prev:
                    return None
                if not _read_segment(raw[HEADER_BYTES + link.core_len :], found, order):
                    return None
                resort = resort or not link.whole
                prev, last = (link.seq, link.events), (raw, link)
            if last is None:
                return None
            state = _load_core(*last)
            if state is None:
                return None
            return _whole(state, found, order, resort)
    except Exception:  # damaged bytes of any kind: the log is the truth, fold it
        return None


def intact_links(links: Iterable[bytes | memoryview | None]) -> int:
    """How many of ``links`` (a chain from its first link, in order) are present, of this
    fold, each the next of the one before, with a segment that decompresses intact
    (zlib's checksum; no view is built). A reader whose chain is damaged in the middle
    rebuilds that many instead and folds the log from there, not from event 0.

    Example::

        n = intact_links(chain_bytes)    # 2 of 5: the third link is damaged
        state = rebuild(chain_bytes[:n]) # the full state at the second link
    """
    prev, whole = (0, 0), 0
    try:
        for data in links:
            raw = None if data is None else memoryview(data).cast("B")
            link = None if raw is None else parse_link(raw)
            if raw is None or link is None or (link.prev_seq, link.prev_events) != prev:
                break
            if not Decompressing(raw[HEADER_BYTES + link.core_len :]).drained():
                break
            prev, whole = (link.seq, link.events), whole + 1
    except Exception:  # damaged bytes of any kind: the chain ends before them
        pass
    return whole


def _read_segment(
    data: memoryview, found: dict[str, dict[Any, Any]], order: dict[str, list[Any]]
) -> bool:
    """Add a segment's views to ``found`` (a later one replaces an earlier: the last
    value) and its keys' order to ``order``; False if it is not intact."""
    stream = Decompressing(data)
    while True:
        # Each chunk is a pickle of its own (its own memo): one unpickler each.
        field, items = StateUnpickler(stream).load()
        if field == "":
            for name in _IN_ORDER:
                order[name].extend(items[name])
            return stream.complete()
        found[field].update(items)


def _whole(
    state: RunState, found: dict[str, dict[Any, Any]], order: dict[str, list[Any]], resort: bool
) -> RunState | None:
    """``state`` (a compact state) made whole with the views of its chain's segments."""
    for field in VIEWS:
        views = found[field]
        views.update(getattr(state, field))  # what the state holds is the newest
        if field in _IN_ORDER:
            if len(order[field]) != len(views):
                return None  # an entry whose place no link recorded: not this fold's
            views = {key: views[key] for key in order[field]}
        elif resort:
            # Links add the views a fold let go of, not in the order it added them:
            # that is the order of their seqs (each added by one event, once).
            seqs = [v.seq for v in views.values()]
            if None in seqs:
                return None
            if any(a >= b for a, b in itertools.pairwise(seqs)):
                views = dict(sorted(views.items(), key=lambda kv: kv[1].seq))
        setattr(state, field, views)
    by_type: dict[str, list[str]] = {}
    for aid, art in state.artifacts.items():
        by_type.setdefault(art.type, []).append(aid)
    state.by_type = by_type
    fresh = RunState()
    for name in _COUNTED + _COUNTED_TOO:
        setattr(state, name, getattr(fresh, name))
    return state
