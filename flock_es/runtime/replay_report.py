"""What a replay reports: the divergence, the timeline, the verdict.

Timeline lines come from ``flock_es.domain.describe``, as the TUI's event log does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from flock_es.domain.describe import actor, describe
from flock_es.domain.events import Event, EventKind

# A replay pays for no call: these lines say where the answer came from.
_SERVED = frozenset({EventKind.MODEL_CALLED, EventKind.TOOL_CALLED})


@dataclass(slots=True)
class Divergence:
    """The first place where the current code does not do what the record says."""

    seq: int
    what: str
    expected: Any
    actual: Any
    agent: str | None = None
    task_id: str | None = None

    def __str__(self) -> str:
        who = f" ({self.agent})" if self.agent else ""
        return (
            f"diverged at seq {self.seq}{who}: {self.what}\n"
            f"  expected (recorded): {_short(self.expected)}\n"
            f"  actual   (replayed): {_short(self.actual)}"
        )


@dataclass(slots=True)
class Step:
    seq: int
    offset: float
    agent: str
    text: str
    ok: bool = True


@dataclass(slots=True)
class ReplayReport:
    run_id: str
    events: int = 0
    identical: bool = True
    divergence: Divergence | None = None
    timeline: list[Step] = field(default_factory=list)
    model_calls: int = 0
    served_calls: int = 0
    tasks_replayed: int = 0
    decisions_checked: int = 0
    pending_at_end: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = "identical" if self.identical else "diverged"
        return out


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def timeline_step(e: Event, start: float) -> Step:
    """One readable line of a run's history: who did what, when."""
    text = describe(e)
    if e.kind in _SERVED:
        text += " · served from the record"
    return Step(seq=e.seq or 0, offset=e.ts - start, agent=actor(e), text=text)
