"""A checkpoint job's fold: compact, streaming what it lets go of into the next link.

``LinkFold`` starts from the compact state of the latest link (or from the empty
state) and folds the log on compactly; every view the compact fold lets go of
(``fold_compact.forget_task``, ``prune_artifacts``) goes, as it goes, into the
``Segment`` of the next link, which compresses it in chunks. ``link()`` returns
the bytes of a snapshot at the state's seq (``snapshot.link_bytes``) and starts
the next segment. The job so holds the compact state, one chunk of views and the
compressed segment, never the run's whole state (issue 14).

The state's dicts of views are watched (``_Spilling``): whatever removes an entry,
the removed view is the segment's. A log never records for a task after its
completion, and an artifact leaves the compact state only once durable, released
and not referred to by pending work (``fold_compact``), so what leaves is final.
An artifact view that no release will change is final when folded: it goes to the
segment at once and is parked, compressed (``Parked``), rather than held, until
the next link's compact state takes those pending work refers to (a publish of
100,000 artifacts pins them until they are decided, most of a run).

Example::

    links = LinkFold(state)              # a link's compact state, or RunState()
    for e in events:
        links.apply(e)
        if links.full():
            store(links.state.last_seq, links.link())
    store(links.state.last_seq, links.link())
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flock_es.domain.event_bodies import ArtifactPublished
from flock_es.domain.events import Event, EventKind
from flock_es.projection.fold import apply, artifact_view
from flock_es.projection.fold_compact import compacted, prune_artifacts
from flock_es.projection.snapshot import VIEWS, Segment, link_bytes, shallow
from flock_es.projection.snapshot_codec import Compressing, Decompressing, StateUnpickler, dump
from flock_es.projection.state import ArtifactView, RunState

__all__ = ["SEGMENT_BYTES", "LinkFold", "Parked"]

SEGMENT_BYTES = 8 << 20
"""Pickled bytes of a segment (about 3 MB compressed: some 70,000 views of small
artifacts and their tasks) past which a job stores a link before going on: what a job
holds of them, and what a resume reads beside the compact state, stay small."""

# The fields whose entries carry no seq: the segment records the order they came in.
_ORDERED = ("rewritten_inputs", "mcp_tools")
_CHUNK = 2048
"""Artifact views parked in one compressed piece (or read back in one ``read``)."""
_PUBLISHED = EventKind.ARTIFACT_PUBLISHED  # a global: an enum member costs ~3x (fold.py)


class _Spilling(dict[Any, Any]):
    """A dict of a state's views that hands each entry removed from it to ``segment``."""

    __slots__ = ("field", "segment")

    def __init__(self, field: str, segment: Segment, entries: dict[Any, Any]) -> None:
        super().__init__(entries)
        self.field = field
        self.segment = segment

    def __delitem__(self, key: Any) -> None:
        self.segment.add(self.field, key, self[key])
        super().__delitem__(key)

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            self.segment.add(self.field, key, self[key])
        return super().pop(key, *default)


class _Ordering(_Spilling):
    """A ``_Spilling`` dict whose entries carry no seq: it records the keys added."""

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self:
            self.segment.order[self.field].append(key)
        super().__setitem__(key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self.segment.order[self.field].append(key)
        return super().setdefault(key, default)


class Parked:
    """The artifact views a job's state does not hold: each was given to a segment when
    folded (it is final), and is kept here only for the compact state of the next link,
    which holds those pending work refers to. With ``read`` (the events at given seqs:
    a job's reader), only the hash of each view's id and its seq are kept, and the
    views of those pinned at the next link are built again from their events (a parked
    view is ``artifact_view`` of its event, which nothing changes after); else the views
    are kept pickled and compressed in chunks, with the hashes of their ids. Either way
    no string of the events they came from stays alive (each would keep the memory of
    its page of events). Reading back costs a query per ``_CHUNK`` pinned views, where
    pickling every parked view a second time cost a job some 7% of its CPU."""

    def __init__(self, read: Callable[[Sequence[int]], list[Event]] | None = None) -> None:
        self.read = read
        self.chunks: list[tuple[array[int], bytes]] = []
        self.pending: list[ArtifactView] = []
        self.ids: array[int] = array("q")  # with ``read``: hashes of the parked ids
        self.seqs: array[int] = array("q")  # and their seqs, in the order parked

    def take(self, entries: list[tuple[str, ArtifactView]]) -> list[tuple[str, ArtifactView]]:
        """Park the views of ``entries`` that are final; returns the others (to hold)."""
        held = []
        for key, view in entries:
            if _parks(view):
                self.add(view)
            else:
                held.append((key, view))
        return held

    def add(self, view: ArtifactView) -> None:
        if self.read is not None:
            self.ids.append(hash(view.id))
            self.seqs.append(view.seq or 0)  # never 0: only durable views park (``_parks``)
            return
        self.pending.append(view)
        if len(self.pending) >= _CHUNK:
            out = Compressing()
            dump(out, self.pending)
            self.chunks.append((array("q", [hash(v.id) for v in self.pending]), out.getvalue()))
            self.pending = []

    def kept(self, pinned: set[str]) -> Iterator[ArtifactView]:
        """The views of ``pinned``, one chunk at a time, in the order parked (and parked
        again for the next link); the others are let go of, as a compact fold prunes
        them. Read it to its end."""
        canon = {a: a for a in pinned}  # the state's own id strings: one copy each
        hashes = {hash(a) for a in pinned}
        if self.read is not None:
            yield from self._read_back(hashes, canon)
            return
        chunks, pending = self.chunks, self.pending
        self.chunks, self.pending = [], []
        chunks.reverse()
        while chunks:  # each let go of once read: the parked views are not held twice
            ids, data = chunks.pop()
            if any(h in hashes for h in ids):
                yield from self._keep(StateUnpickler(Decompressing(memoryview(data))).load(), canon)
            del ids, data
        yield from self._keep(pending, canon)

    def _read_back(self, hashes: set[int], canon: dict[str, str]) -> Iterator[ArtifactView]:
        """``kept`` with ``read``: the pinned views built from their events."""
        assert self.read is not None
        seqs = [seq for h, seq in zip(self.ids, self.seqs, strict=True) if h in hashes]
        self.ids, self.seqs = array("q"), array("q")
        for i in range(0, len(seqs), _CHUNK):
            views = [
                artifact_view(e.body, e.seq, e.ts, e.size)  # type: ignore[arg-type]
                for e in self.read(seqs[i : i + _CHUNK])
                if e.kind is _PUBLISHED
            ]
            yield from self._keep(views, canon)

    def _keep(self, views: list[ArtifactView], canon: dict[str, str]) -> Iterator[ArtifactView]:
        for view in views:
            if view.id in canon:
                view.id = canon[view.id]
                self.add(view)
                yield view


class _Parking(_Spilling):
    """The state's ``artifacts`` in a job: a durable view that no release will change
    goes to the segment and to ``parked`` at once, not into the dict (the fold reads the
    views it holds only to release them, or to not add one twice, which no log does)."""

    __slots__ = ("parked",)

    def __init__(self, segment: Segment, parked: Parked, entries: dict[Any, Any]) -> None:
        super().__init__("artifacts", segment, {})
        self.parked = parked
        for key, view in entries.items():
            if _parks(view):
                parked.add(view)  # given to a segment when it was folded
            else:
                super().__setitem__(key, view)

    def __setitem__(self, key: Any, view: Any) -> None:
        if _parks(view):
            self.park(key, view)
        else:
            super().__setitem__(key, view)

    def park(self, key: str, view: ArtifactView) -> None:
        """Give a final view to the segment and park it, never holding it here."""
        self.segment.add("artifacts", key, view)
        self.parked.add(view)


def _seq(entry: tuple[str, ArtifactView]) -> int:
    return entry[1].seq or 0


def _parks(view: ArtifactView) -> bool:
    """Whether ``view`` is final: durable, and not waiting for its release."""
    return view.seq is not None and view.visibility.get("kind") != "after"


class LinkFold:
    """The compact fold of a checkpoint job, from ``start`` (the compact state of the
    link at its seq, or an empty state: the chain's first link)."""

    def __init__(self, start: RunState, parked: Parked | None = None) -> None:
        """``parked``: the artifact views of ``start`` already parked (``Parked.take``
        given to ``decode`` as it read them): a large pending publish's are never all
        held at once."""
        if not start.compact and start.events:
            raise ValueError("a chain goes on from a link's compact state or from event 0")
        self.state = start
        self.prev = (start.last_seq, start.events)
        self.segment = Segment()
        self.parked = Parked() if parked is None else parked
        self.watched: list[_Spilling] = []
        for field in VIEWS:
            entries = getattr(start, field)
            if field == "artifacts":
                self.artifacts = _Parking(self.segment, self.parked, entries)
                watched: _Spilling = self.artifacts
            else:
                kind = _Ordering if field in _ORDERED else _Spilling
                watched = kind(field, self.segment, entries)
            setattr(start, field, watched)
            self.watched.append(watched)
        compacted(start)

    def apply(self, e: Event) -> None:
        """Fold ``e`` compactly; an artifact whose decision is deferred, of which a compact
        state holds only the id (``fold._artifact``), goes to the segment and is parked
        here: the full state the chain rebuilds holds its view, as a fold from event 0
        does."""
        state = self.state
        if e.kind is not _PUBLISHED:
            apply(state, e)
            return
        b: ArtifactPublished = e.body  # type: ignore[assignment]
        known = b["id"] in state.undecided or b["id"] in state.artifacts
        apply(state, e)
        if not known and b["id"] in state.undecided and b["id"] not in state.artifacts:
            self.artifacts.park(b["id"], artifact_view(b, e.seq, e.ts, e.size))

    @property
    def behind(self) -> int:
        """Events folded since the last link (or the start)."""
        return self.state.events - self.prev[1]

    def full(self) -> bool:
        """Whether the segment is large enough to be stored as a link now."""
        return self.segment.size >= SEGMENT_BYTES

    def link(self) -> bytes:
        """The snapshot at the state's seq (the views nothing pending refers to let go
        of first), and a new segment for the next link."""
        s = self.state
        prune_artifacts(s)  # the compact state a resume decodes holds no more than it needs
        core = shallow(s)  # plain dicts: a snapshot holds only the state's own classes
        # The views pending work refers to, parked ones and held ones, in the order a
        # compact fold added them (their seqs), written as they are read back.
        parked = ((v.id, v) for v in self.parked.kept(s.pinned_artifacts()))
        views = heapq.merge(parked, list(core.artifacts.items()), key=_seq)
        data = link_bytes(core, self.segment, *self.prev, artifacts=views)
        self.prev = (s.last_seq, s.events)
        self.segment = Segment()
        for watched in self.watched:
            watched.segment = self.segment
        return data
