"""The fold of what components record: rewritten inputs and refused matches.

Kept apart from ``fold.py`` (its table imports these), which is long enough.

Example::

    apply(state, inputs_rewritten_event)
    state.rewritten_inputs[task_id]["inputs"]   # what the task evaluated
"""

from __future__ import annotations

from flock_es.domain.events import Event, InputsRewritten, ScheduleVetoed
from flock_es.projection.state import RunState

__all__ = ["inputs_rewritten", "schedule_vetoed"]


def inputs_rewritten(s: RunState, e: Event, b: InputsRewritten) -> None:
    # The latest attempt's record wins: a resumed task records its own.
    s.rewritten_inputs[b["task_id"]] = {"inputs": b["inputs"], "state": b["state"], "seq": e.seq}


def schedule_vetoed(s: RunState, e: Event, b: ScheduleVetoed) -> None:
    s.vetoed[(b["artifact_id"], b["agent"], b["sub_index"])] = dict(b, seq=e.seq)
