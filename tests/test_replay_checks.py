"""``output_matches`` (replay's cheap check of a re-produced output) never passes an
output that ``output_divergence`` (the full check, which builds the report) would
report: it only answers "identical" sooner, and leaves every difference to it."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pydantic import BaseModel

from flock_es.domain.events import ArtifactPublished, Event, EventKind, TaskCompleted
from flock_es.runtime.replay_checks import TaskOutcome, output_divergence, output_matches


class Val(BaseModel):
    x: Any = None
    y: Any = None


class Other(BaseModel):
    x: Any = None
    y: Any = None


def _check(payload: dict[str, Any], out: TaskOutcome, rtype: str = "Val") -> tuple[bool, bool]:
    b = cast(ArtifactPublished, {"id": "a-1", "type": rtype, "payload": payload})
    done = cast(TaskCompleted, {"task_id": "t-1", "agent": "f", "outputs": ["a-1"]})
    e = Event("r-1", EventKind.ARTIFACT_PUBLISHED, dict(b), 1.0, 7)
    return output_matches(b, done, out), output_divergence(e, b, done, out, "f") is None


CASES = [
    ({"x": 1, "y": "a"}, [Val(x=1, y="a")], "Val"),  # the same
    ({"y": "a", "x": 1}, [Val(x=1, y="a")], "Val"),  # keys in another order: still equal
    ({"x": 1.0, "y": None}, [Val(x=1)], "Val"),  # 1 == 1.0 both ways
    ({"x": 2, "y": None}, [Val(x=1)], "Val"),  # another value
    ({"x": 1, "y": None}, [Other(x=1)], "Val"),  # another type
    ({"x": [1, {"k": 1e300}], "y": None}, [Val(x=[1, {"k": 1e300}])], "Val"),
    ({"x": float("nan"), "y": None}, [Val(x=float("nan"))], "Val"),  # NaN: left to the full check
    ({"x": float("inf"), "y": None}, [Val(x=float("inf"))], "Val"),
    ({"x": 2**70, "y": None}, [Val(x=2**70)], "Val"),
    ({"x": 1, "y": None}, [], "Val"),  # no such output
]


@pytest.mark.parametrize(("payload", "outputs", "rtype"), CASES)
def test_a_match_is_never_a_divergence(
    payload: dict[str, Any], outputs: list[BaseModel], rtype: str
) -> None:
    fast, full = _check(payload, TaskOutcome(outputs=outputs), rtype)
    assert not fast or full  # fast says identical only where the full check does
    if full and payload["x"] == payload["x"]:  # NaN aside, the fast check agrees
        assert fast


def test_a_failed_task_is_left_to_the_full_check() -> None:
    assert _check({"x": 1}, TaskOutcome(error="boom", error_type="ValueError")) == (False, False)
