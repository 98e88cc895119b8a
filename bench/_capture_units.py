"""Capture the committed units of workload (b) (for micro-benchmarks of the writer).

Example: ``groups = capture(items=500)``, the event lists the writer committed, in order.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
from pathlib import Path
from typing import Any

from flock_es.domain.events import Event
from flock_es.log import writer


def capture(items: int = 500, agents: int = 8, kind: str = "def") -> list[list[Event]]:
    """Run workload (b) once and return copies of every group the writer committed."""
    from bench.profile_b import _run

    groups: list[list[Event]] = []
    real = writer.LogWriter._transaction

    def spy(self: Any, conn: Any, events: list[Event], wait: bool) -> bool:
        done = real(self, conn, events, wait)
        if done:
            groups.append([copy.copy(e) for e in events])
        return done

    writer.LogWriter._transaction = spy  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as d:
            asyncio.run(_run(Path(d) / "cap.db", kind, agents, items))
    finally:
        writer.LogWriter._transaction = real  # type: ignore[method-assign]
    return groups
