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

Example::

    links = LinkFold(state)              # a link's compact state, or RunState()
    for e in events:
        apply(links.state, e)
        if links.full():
            store(links.state.last_seq, links.link())
    store(links.state.last_seq, links.link())
"""

from __future__ import annotations

from typing import Any

from flock_es.projection.fold_compact import compacted, prune_artifacts
from flock_es.projection.snapshot import VIEWS, Segment, link_bytes, shallow
from flock_es.projection.state import RunState

__all__ = ["SEGMENT_BYTES", "LinkFold"]

SEGMENT_BYTES = 8 << 20
"""Pickled bytes of a segment (about 3 MB compressed: some 70,000 views of small
artifacts and their tasks) past which a job stores a link before going on: what a job
holds of them, and what a resume reads beside the compact state, stay small."""

# The fields whose entries carry no seq: the segment records the order they came in.
_ORDERED = ("rewritten_inputs", "mcp_tools")


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


class LinkFold:
    """The compact fold of a checkpoint job, from ``start`` (the compact state of the
    link at its seq, or an empty state: the chain's first link)."""

    def __init__(self, start: RunState) -> None:
        if not start.compact and start.events:
            raise ValueError("a chain goes on from a link's compact state or from event 0")
        self.state = start
        self.prev = (start.last_seq, start.events)
        self.segment = Segment()
        self.watched: list[_Spilling] = []
        for field in VIEWS:
            kind = _Ordering if field in _ORDERED else _Spilling
            watched = kind(field, self.segment, getattr(start, field))
            setattr(start, field, watched)
            self.watched.append(watched)
        compacted(start)

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
        data = link_bytes(core, self.segment, *self.prev)
        self.prev = (s.last_seq, s.events)
        self.segment = Segment()
        for watched in self.watched:
            watched.segment = self.segment
        return data
