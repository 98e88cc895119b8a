"""Garbage-collector thresholds and the GIL switch interval while a run drives agents.

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

While a run drives agents, the interpreter also hands the GIL to a thread
that asks for it after 0.2 ms instead of 5 ms (``sys.setswitchinterval``).
The SQLite writer thread (``log/writer.py``) runs its statements without
the GIL and needs it back after each one, several times a commit; the event
loop's thread, busy running agents, kept it until the switch interval ran
out, so the writer waited about 2.5 ms a statement: on workload (b), 50-80
µs a run, longer than it spent writing (issue 14). A program that set its
own interval is left alone.

Example::

    with fewer_collections():
        await engine.run_until_idle()
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

__all__ = ["RUN_SWITCH_INTERVAL", "RUN_THRESHOLDS", "fewer_collections"]

PYTHON_DEFAULTS = (700, 10, 10)
RUN_THRESHOLDS = (50_000, 20, 20)
PYTHON_SWITCH_INTERVAL = 0.005
RUN_SWITCH_INTERVAL = 0.0002
_active = 0
# What the outermost active run changed (and so restores): thresholds, interval.
_changed = (False, False)


def _switch_is(seconds: float) -> bool:
    """Whether the switch interval is ``seconds`` (CPython keeps whole microseconds)."""
    return round(sys.getswitchinterval() * 1e6) == round(seconds * 1e6)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds and shorten the switch interval for the
    duration, each only if it is Python's default."""
    global _active, _changed
    if _active == 0:
        # Not the defaults: the program (or the CLI) chose its own, which stay.
        gc_default = gc.get_threshold() == PYTHON_DEFAULTS
        switch_default = _switch_is(PYTHON_SWITCH_INTERVAL)
        if gc_default:
            gc.set_threshold(*RUN_THRESHOLDS)
        if switch_default:
            sys.setswitchinterval(RUN_SWITCH_INTERVAL)
        _changed = (gc_default, switch_default)
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        if _active == 0:
            gc_changed, switch_changed = _changed
            if gc_changed and gc.get_threshold() == RUN_THRESHOLDS:
                gc.set_threshold(*PYTHON_DEFAULTS)
            if switch_changed and _switch_is(RUN_SWITCH_INTERVAL):
                sys.setswitchinterval(PYTHON_SWITCH_INTERVAL)
            _changed = (False, False)
