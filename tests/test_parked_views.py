"""A checkpoint job's parked artifact views (``snapshot_links.Parked``): kept as seqs
and read back from the log, the views pending work pins at a link are those the job
would hold had it pickled every view it parked."""

from __future__ import annotations

from typing import Any

import pytest

from flock_es.domain.events import Event, EventKind
from flock_es.projection import fold
from flock_es.projection.snapshot import decode
from tests.test_fold_properties import RUN
from tests.test_snapshot_chain import _linked


def _pinned_log() -> list[Event]:
    """Two artifacts, and a task pending on one of them."""
    bodies: list[tuple[EventKind, dict[str, Any]]] = [
        (EventKind.RUN_STARTED, {"model": "offline", "agents": []}),
        (EventKind.ARTIFACT_PUBLISHED, {"id": "a-1", "type": "T", "payload": {"n": 1}}),
        (EventKind.ARTIFACT_PUBLISHED, {"id": "a-2", "type": "T", "payload": {"n": 2}}),
        (
            EventKind.TASK_SCHEDULED,
            {"task_id": "t-1", "agent": "x", "sub_index": 0, "inputs": ["a-2"]},
        ),
    ]
    return [
        Event(run_id=RUN, kind=k, body=b, ts=float(i), seq=i + 1) for i, (k, b) in enumerate(bodies)
    ]


@pytest.mark.parametrize("by_seq", [False, True])
def test_a_link_holds_the_views_pending_work_refers_to(by_seq: bool) -> None:
    """Parked as seqs, the view a pending task refers to is read back into the link's
    compact state, as it is when parked pickled; the others are not."""
    evs = _pinned_log()
    (data,) = _linked(evs, [len(evs)], by_seq=by_seq)
    core = decode(data, compact=True)
    assert core is not None and list(core.artifacts) == ["a-2"]
    assert core.artifacts["a-2"] == fold(evs).artifacts["a-2"]
