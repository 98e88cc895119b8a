"""``flock-es tui``: a live Textual monitor of a flock-es event log.

It reads the database read-only and folds the events with the same fold as
the runtime, so what it shows is exactly what the log says. It imports
``flock_es``; ``flock_es`` never imports it (the CLI imports it lazily).

Example::

    from tui import MonitorApp
    MonitorApp(Path("data/flock-es.db")).run()
"""

from __future__ import annotations

from flock_es.cli.tui_cmd import MIN_HEIGHT, MIN_WIDTH
from tui.app import MonitorApp
from tui.monitor import Monitor

__all__ = ["MIN_HEIGHT", "MIN_WIDTH", "Monitor", "MonitorApp"]
