"""A call at the moment the running event loop next looks for I/O, and whether it
is about to wait for it.

asyncio's selector loop asks its selector for I/O once per iteration, after
the callbacks of the previous iteration ran: with a timeout of 0 when more
callbacks are ready (the loop is busy), else until its next timer (the loop
is about to wait). ``at_next_select(loop, fn)`` has the selector call
``fn(timeout)`` first, once; ``fn`` returns True if it made callbacks ready
(then the selector does not wait). The log writer uses it to commit a unit
on the loop's own thread when the loop would otherwise only wait for that
commit (``log/thread_drain.py``), instead of handing it to its thread and
waiting for two wake-ups.

Only a selector that keeps a ``before_select`` list supports it (the precise
selector a run gives its loop, ``models/precise_timers.py``); elsewhere
``at_next_select`` returns False and the caller does what it did before.
This module sits below every layer: the selector (models) and the writer
(log) meet here without importing each other.

Example::

    def hook(timeout: float | None) -> bool:
        return False  # nothing made ready: the loop waits as it would have

    if not at_next_select(asyncio.get_running_loop(), hook):
        asyncio.get_running_loop().call_soon(hook, 0.0)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["BeforeSelect", "at_next_select", "run_before_select"]

# Called with the selector's timeout (None: wait without limit, 0: the loop is busy).
BeforeSelect = Callable[[float | None], bool]


def at_next_select(loop: asyncio.AbstractEventLoop, fn: BeforeSelect) -> bool:
    """Have ``loop``'s selector call ``fn`` before its next select; False if it cannot."""
    hooks: list[BeforeSelect] | None = getattr(
        getattr(loop, "_selector", None), "before_select", None
    )
    if hooks is None:
        return False
    hooks.append(fn)
    return True


def run_before_select(hooks: list[BeforeSelect], timeout: float | None) -> float | None:
    """Call and clear ``hooks`` (a selector's ``before_select``); the timeout to use.

    Example: ``timeout = run_before_select(self.before_select, timeout)``.
    """
    calls = hooks[:]
    hooks.clear()
    for fn in calls:
        if fn(timeout):
            timeout = 0  # callbacks are ready: look for I/O, do not wait
    return timeout
