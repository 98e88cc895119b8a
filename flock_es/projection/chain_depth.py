"""How deep a chain of agent runs is, and where it stops (``Flock(max_depth=)``).

Agents that feed each other (one publishes what the other consumes, and back)
run until something stops them, and with model agents every run is a paid call:
two such agents made 235,449 runs in a minute, unbounded. flock-core stops any
agent at 1,000 runs between idles, which stops a fan-out too: 100,000 items
published to one agent are 100,000 of its runs. Depth tells the two apart. An
artifact published from outside is 0 deep; a task is as deep as the deepest of
its inputs; its outputs are one deeper. A fan-out of any size is one run deep,
a loop one run deeper each time round. A task at ``max_depth`` is not
scheduled: its match is recorded as a ``circuit.tripped`` naming the depth.

The depths are recorded (``task.scheduled`` and ``artifact.published`` carry
``depth`` when it is not 0), and the limit with them (``run.started``'s
``max_depth``), so resume and replay decide as the run did. A run that records
no limit (one written before the option, or ``max_depth=None``) records no
depths, and its events stay as they were.

Example::

    flock = Flock(max_depth=50)   # a chain of at most 50 runs from any publish
    flock = Flock(max_depth=None) # no limit (a loop runs until stopped)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flock_es.domain.events import CircuitTripped, Event, EventKind, make_event
from flock_es.projection.state import RunState

__all__ = ["DEFAULT_MAX_DEPTH", "depth_trips", "refused", "task_depth", "too_deep"]

DEFAULT_MAX_DEPTH = 1000
"""``Flock``'s default: flock-core's 1,000, counted along a chain, not per agent."""


def task_depth(state: RunState, inputs: list[str]) -> int:
    """The depth of a task on ``inputs``: the deepest of theirs (0 without ``max_depth``).

    Every input's view is held when its task is decided: the artifact being decided,
    or the members a batch or a gate holds (what holds them pins them)."""
    if state.max_depth is None:
        return 0
    arts = state.artifacts
    return max((v.depth for i in inputs if (v := arts.get(i)) is not None), default=0)


def too_deep(
    state: RunState, agent: str, sub_index: int, inputs: list[str], depth: int, now: float
) -> Event | None:
    """``circuit.tripped`` if a task ``depth`` deep would pass ``max_depth``, else None."""
    limit = state.max_depth
    if limit is None or depth < limit:
        return None
    return refused(state, agent, sub_index, inputs, depth, now)


def refused(
    state: RunState, agent: str, sub_index: int, inputs: list[str], depth: int, now: float
) -> Event:
    """The ``circuit.tripped`` of a task ``depth`` deep, at or past ``max_depth``."""
    limit = state.max_depth
    assert limit is not None  # the callers checked it
    body = CircuitTripped(agent=agent, sub_index=sub_index, inputs=inputs, limit=limit)
    body["depth"] = depth
    return make_event(state.run_id, EventKind.CIRCUIT_TRIPPED, body, now)


def depth_trips(trips: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many of ``trips`` (``circuit.tripped`` bodies, as ``RunState.circuit_trips``
    or ``show``'s data hold them) were ``max_depth``'s, by agent; the others were
    ``max_agent_iterations``'."""
    deep: dict[str, int] = {}
    for c in trips:
        if c.get("depth") is not None:
            deep[c["agent"]] = deep.get(c["agent"], 0) + 1
    return deep
