"""The upcast path: a v1 log read by code whose schema is v2.

No v2 exists yet, so the v2 here is local to the test: ``task.failed`` renames
``error`` to ``message`` and ``run.started`` gains ``labels``. The log on disk
is written by the real writer at v1 and is never rewritten; reading it through
a registry that targets v2 gives v2 bodies, stamped v2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from flock_es.domain import upcast as upcast_module
from flock_es.domain.events import (
    SCHEMA_VERSION,
    EventKind,
    RunStarted,
    TaskFailed,
    make_event,
)
from flock_es.domain.upcast import Upcasters
from flock_es.log import LogReader, LogWriter


def v2_registry() -> Upcasters:
    v2 = Upcasters(current=2)

    @v2.register(EventKind.TASK_FAILED, 1)
    def _message(body: dict[str, Any]) -> dict[str, Any]:
        out = dict(body)
        out["message"] = out.pop("error")
        return out

    @v2.register(EventKind.RUN_STARTED, 1)
    def _labels(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "labels": []}

    return v2


def test_a_v1_body_is_lifted_to_v2_and_left_untouched() -> None:
    v2 = v2_registry()
    stored = {"task_id": "t-1", "agent": "a", "error": "boom"}
    body, v = v2.upcast(EventKind.TASK_FAILED, 1, stored)
    assert (body, v) == ({"task_id": "t-1", "agent": "a", "message": "boom"}, 2)
    assert stored == {"task_id": "t-1", "agent": "a", "error": "boom"}  # pure
    # A kind without an upcaster for the step did not change in it.
    same, v = v2.upcast(EventKind.TASK_STARTED, 1, {"task_id": "t-1", "agent": "a"})
    assert same == {"task_id": "t-1", "agent": "a"} and v == 2
    # A current body costs one comparison and is returned as it is.
    current = {"task_id": "t-1", "agent": "a", "message": "x"}
    assert v2.upcast(EventKind.TASK_FAILED, 2, current) == (current, 2)


def test_steps_chain_from_any_old_version() -> None:
    v3 = Upcasters(current=3)
    v3.register(EventKind.TASK_FAILED, 1)(lambda b: {**b, "seen": [1]})
    v3.register(EventKind.TASK_FAILED, 2)(lambda b: {**b, "seen": [*b.get("seen", []), 2]})
    assert v3.upcast(EventKind.TASK_FAILED, 1, {})[0] == {"seen": [1, 2]}
    assert v3.upcast(EventKind.TASK_FAILED, 2, {})[0] == {"seen": [2]}


def test_a_step_is_registered_once_and_only_below_the_current_version() -> None:
    v2 = v2_registry()
    with pytest.raises(ValueError, match="already has an upcaster"):
        v2.register(EventKind.TASK_FAILED, 1)(lambda b: b)
    with pytest.raises(ValueError, match="lifts a version"):
        v2.register(EventKind.TASK_FAILED, 2)(lambda b: b)


async def test_the_reader_upcasts_a_v1_log(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SCHEMA_VERSION == 1  # when this fails, v2 is real: rewrite this test around it
    w = await LogWriter.open(db_path)
    now = time.time()
    started = RunStarted(model="offline", agents=[])
    failed = TaskFailed(task_id="t-1", agent="a", error="boom")
    await w.append(
        [
            make_event("r-old", EventKind.RUN_STARTED, started, now),
            make_event("r-old", EventKind.TASK_FAILED, failed, now),
        ]
    )
    await w.close()

    monkeypatch.setattr(upcast_module, "UPCASTERS", v2_registry())
    with LogReader(db_path) as reader:
        events = reader.events("r-old")
        stored = reader.query("SELECT v, body FROM events ORDER BY seq")
    assert [e.v for e in events] == [2, 2]
    assert events[0].body["labels"] == []
    assert events[1].body == {"task_id": "t-1", "agent": "a", "message": "boom"}
    assert [v for v, _ in stored] == [1, 1]  # the log itself is never rewritten
    assert '"error":"boom"' in str(stored[1][1])
