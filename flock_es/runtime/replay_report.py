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
        where, expected, actual = first_difference(self.expected, self.actual)
        return (
            f"diverged at seq {self.seq}{who}: {self.what}\n"
            + (f"  where: {where}\n" if where else "")
            + f"  expected (recorded): {expected}\n"
            f"  actual   (replayed): {actual}"
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


SHOWN = 400
"""Characters of each side a divergence shows."""


def first_difference(expected: Any, actual: Any, limit: int = SHOWN) -> tuple[str, str, str]:
    """Where two recorded values first differ, and each side shown from there.

    A prompt is thousands of characters; its first ``limit`` are the same on both
    sides when an output schema or an input changed further on. So the values are
    followed down (keys, list positions) to the first part that differs, and a long
    text is shown from a little before its first differing character.

    Example::

        first_difference([{"content": "ab"}], [{"content": "ac"}])
        # -> ('[0].content', 'ab', 'ac')
    """
    path = ""
    while True:
        if isinstance(expected, dict) and isinstance(actual, dict):
            keys = [
                k
                for k in sorted({*expected, *actual}, key=str)
                if _at(expected, k) != _at(actual, k)
            ]
            if len(keys) != 1 or keys[0] not in expected or keys[0] not in actual:
                break
            path, expected, actual = f"{path}.{keys[0]}", expected[keys[0]], actual[keys[0]]
        elif (
            isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual)
        ):
            pairs = enumerate(zip(expected, actual, strict=True))
            i = next((i for i, (a, b) in pairs if a != b), None)
            if i is None:
                break
            path, expected, actual = f"{path}[{i}]", expected[i], actual[i]
        else:
            break
    a, b = _text(expected), _text(actual)
    if len(a) <= limit and len(b) <= limit:
        return path.lstrip("."), _one_line(a), _one_line(b)
    pairs = enumerate(zip(a, b, strict=False))
    i = next((n for n, (x, y) in pairs if x != y), min(len(a), len(b)))
    start = max(0, i - limit // 4)
    where = path.lstrip(".") + (f", first differs at character {i:,}" if start else "")
    return where.lstrip(", "), _window(a, start, limit), _window(b, start, limit)


def _at(value: dict[Any, Any], key: Any) -> Any:
    return value.get(key, _MISSING)


_MISSING = object()


def _text(value: Any) -> str:
    # A text as it is (a prompt's characters are counted in it); anything else as JSON.
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True, ensure_ascii=False)


def _window(text: str, start: int, limit: int) -> str:
    head = "…" if start else ""
    tail = "…" if len(text) > start + limit else ""
    return head + _one_line(text[start : start + limit]) + tail


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def timeline_step(e: Event, start: float) -> Step:
    """One readable line of a run's history: who did what, when."""
    text = describe(e)
    if e.kind in _SERVED:
        text += " · served from the record"
    return Step(seq=e.seq or 0, offset=e.ts - start, agent=actor(e), text=text)
