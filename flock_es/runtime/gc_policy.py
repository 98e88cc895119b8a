"""Garbage-collector thresholds while a run drives agents.

A busy run holds hundreds of thousands of live objects (its folded state) and
allocates a few containers per event. With Python's default thresholds
(700, 10, 10) the collector rescans the young and middle generations every few
hundred allocations and the whole heap every few thousand collections: about a
third of the CPU of a run of quick function agents (bench/bench_core.py,
bench/bench_scale.py). While ``run_until_idle``, ``resume`` or ``replay``
drive agents, flock-es collects young objects every 50,000 allocations
instead. Cycles are still collected, just in larger steps; a program that set
its own thresholds is left alone, and the defaults come back when the last
active run stops driving.

Example::

    with fewer_collections():
        await engine.run_until_idle()
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["RUN_THRESHOLDS", "fewer_collections"]

PYTHON_DEFAULTS = (700, 10, 10)
RUN_THRESHOLDS = (50_000, 20, 20)
_active = 0


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds for the duration, if they are Python's defaults."""
    global _active
    if _active == 0 and gc.get_threshold() != PYTHON_DEFAULTS:
        yield  # the program chose its own thresholds (or the CLI tuned them)
        return
    if _active == 0:
        gc.set_threshold(*RUN_THRESHOLDS)
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        if _active == 0 and gc.get_threshold() == RUN_THRESHOLDS:
            gc.set_threshold(*PYTHON_DEFAULTS)
