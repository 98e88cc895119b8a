"""A list that only ``publish_many`` holds, read as the publish streams.

``await flock.publish_many([Item(n=i) for i in range(100_000)])`` hands over a
list that nothing else can reach: the caller built it for this call and kept
no name for it. Read as it is, the list would hold every object until the
publish returns (52 MB for 100,000 small models, most of such a run's peak
memory, issue 14). Read destructively instead, each object goes once its chunk
is built (``runtime/publish_stream.py``), as a generator's would.

Whether anything else holds the list is its reference count. ``publish_many``
reads it first thing (``sys.getrefcount(objs)``): 2 means its own variable and
``getrefcount``'s argument, nothing else. A list that the program named, or
put in another object, counts more and is read as it is, left as it was. The
count is exact only where every reference is counted: CPython before 3.14 (3.14
lets the interpreter's stack borrow references) with the GIL, so elsewhere no
list is ever drained.

Example::

    refs = sys.getrefcount(objs)  # in the caller's frame, before anything else
    if drainable(objs, refs):
        objs = drained(objs)
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterator
from typing import Any, TypeGuard, TypeVar

__all__ = ["drainable", "drained"]

T = TypeVar("T")

ONLY_THE_CALLEE = 2
"""``getrefcount`` of a list only the calling frame holds: its variable and the argument."""

_COUNTS_EXACT = sys.version_info < (3, 14) and not sysconfig.get_config_var("Py_GIL_DISABLED")


def drainable(objs: object, refs: int) -> TypeGuard[list[Any]]:
    """Whether ``objs`` is a plain list that nothing but the caller's variable holds,
    given ``refs``, the ``sys.getrefcount(objs)`` read in the caller's frame."""
    return _COUNTS_EXACT and type(objs) is list and refs == ONLY_THE_CALLEE


def drained(items: list[T]) -> Iterator[T]:
    """The items of ``items`` in order, each dropped from the list as it is read."""
    items.reverse()  # pops from the end are cheap; nobody else sees the list's order
    while items:
        yield items.pop()
