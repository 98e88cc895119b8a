"""``flock-es tui``: a live Textual monitor of a flock-es event log.

The folder ``tui/`` installs as ``flock_es.tui`` (setuptools ``package-dir``),
so ``import tui`` finds nothing once installed. It reads the database
read-only and folds the events with the same fold as the runtime, so what it
shows is exactly what the log says. It imports ``flock_es``; ``flock_es``
never imports it, except ``flock-es tui``, which does so lazily. Names resolve
lazily too, so ``flock_es.tui.terminal`` loads without Textual.

Example::

    from flock_es.tui import MonitorApp
    MonitorApp(Path("data/flock-es.db")).run()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import MonitorApp
    from .monitor import Monitor
    from .terminal import MIN_HEIGHT, MIN_WIDTH

__all__ = ["MIN_HEIGHT", "MIN_WIDTH", "Monitor", "MonitorApp"]

_WHERE = {
    "MonitorApp": ".app",
    "Monitor": ".monitor",
    "MIN_WIDTH": ".terminal",
    "MIN_HEIGHT": ".terminal",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(where, __name__), name)
