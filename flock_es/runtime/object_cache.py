"""The artifact objects a run keeps built, bounded by their number and their size.

Consumers of an artifact usually run soon after its publish, so the kernel keeps
the objects it built (or was handed) for them; an older one is rebuilt from its
payload when asked, so memory does not grow with every artifact of a long run.
A count alone held 4,096 documents when payloads were documents, so objects of
large payloads (``HEAVY_CHARS``) also count by their size, and the oldest of
them go once they pass ``HELD_CHARS`` characters (``payload_size``).

Example::

    cache = ObjectCache()
    cache.put("a-1", obj)          # the oldest goes past OBJECT_CACHE objects
    cache.weigh("a-1", 2_000_000)  # a large one: the oldest large ones go past HELD_CHARS
    cache.get("a-1")               # an OrderedDict's get: C speed on the hot path
"""

from __future__ import annotations

from collections import OrderedDict

from pydantic import BaseModel

from flock_es.projection.payload_size import HELD_CHARS

__all__ = ["OBJECT_CACHE", "ObjectCache"]

OBJECT_CACHE = 4096
"""How many artifact objects a run keeps built."""


class ObjectCache(OrderedDict[str, BaseModel]):
    """Artifact objects by id, oldest first: at most ``OBJECT_CACHE`` of them, and large
    ones (``weigh``) at most ``HELD_CHARS`` characters of payload in all.

    Ordered: the oldest entry goes in O(1) (a dict's first key, after many deletes at
    its front, takes a scan over the deleted slots to find)."""

    def __init__(self) -> None:
        super().__init__()
        self.heavy: OrderedDict[str, int] = OrderedDict()  # large ones: their characters
        self.heavy_chars = 0

    def put(self, aid: str, obj: BaseModel) -> None:
        """Keep ``obj`` built; the oldest goes past ``OBJECT_CACHE`` objects."""
        self[aid] = obj
        if len(self) > OBJECT_CACHE:
            old, _ = self.popitem(last=False)
            if self.heavy:
                self.heavy_chars -= self.heavy.pop(old, 0)

    def weigh(self, aid: str, chars: int) -> None:
        """Count the object ``aid`` (of a payload ``chars`` long) against ``HELD_CHARS``,
        letting go of the oldest large ones past it (rebuilt when asked again)."""
        heavy = self.heavy
        if aid in heavy or aid not in self:
            return
        heavy[aid] = chars
        self.heavy_chars += chars
        while self.heavy_chars > HELD_CHARS and len(heavy) > 1:
            old, n = heavy.popitem(last=False)
            self.heavy_chars -= n
            self.pop(old, None)

    def clear(self) -> None:
        super().clear()
        self.heavy.clear()
        self.heavy_chars = 0
