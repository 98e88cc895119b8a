"""The hot paths build views and events positionally (issue 14: a call by keywords
matches each name). Several neighbouring fields share a type (None, 0, floats), so a
reordered dataclass would still type-check: these tests read every field back by name.
"""

from __future__ import annotations

from flock_es.domain.events import Event, EventKind, trusted_event
from flock_es.log.reader import row_to_event
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState

RUN = "r-pos"


def test_a_scheduled_task_view_has_each_field_where_it_belongs() -> None:
    s = RunState()
    body = {"task_id": "t-1", "agent": "a", "sub_index": 2, "inputs": ["x-1"], "reason": "match"}
    apply(s, Event(RUN, EventKind.TASK_SCHEDULED, body, 12.5, seq=7))
    t = s.tasks["t-1"]
    assert (t.id, t.agent, t.sub_index, t.inputs, t.reason) == ("t-1", "a", 2, ["x-1"], "match")
    assert (t.status, t.attempt, t.scheduled_at, t.seq) == ("scheduled", 0, 12.5, 7)
    assert (t.started_at, t.finished_at, t.error, t.cost) == (None, None, None, 0.0)
    assert (t.outputs, t.calls, t.tokens_in, t.tokens_out) == ([], 0, 0, 0)


def test_a_published_artifact_view_has_each_field_where_it_belongs() -> None:
    s = RunState()
    body = {
        "id": "x-1",
        "type": "Item",
        "payload": {"n": 1},
        "produced_by": "p",
        "task_id": "t-0",
        "correlation_id": "c-1",
        "tags": ["k"],
        "partition_key": "pk",
    }
    apply(s, Event(RUN, EventKind.ARTIFACT_PUBLISHED, body, 3.25, seq=9))
    a = s.artifacts["x-1"]
    assert (a.id, a.type, a.payload, a.produced_by) == ("x-1", "Item", {"n": 1}, "p")
    assert (a.task_id, a.correlation_id, a.tags, a.partition_key) == ("t-0", "c-1", ["k"], "pk")
    assert (a.seq, a.ts, a.released, a.visibility) == (9, 3.25, False, {"kind": "public"})


def test_events_built_positionally_match_their_keyword_twins() -> None:
    built = trusted_event(RUN, EventKind.RUN_FINISHED, {"status": "completed"}, 4.5)
    assert built == Event(
        run_id=RUN, kind=EventKind.RUN_FINISHED, body={"status": "completed"}, ts=4.5
    )
    read = row_to_event((11, RUN, "run.finished", 4.5, 1, '{"status": "completed"}'))
    assert read == Event(
        run_id=RUN, kind=EventKind.RUN_FINISHED, body={"status": "completed"}, ts=4.5, seq=11, v=1
    )


def test_a_model_call_view_has_each_field_where_it_belongs() -> None:
    s = RunState()
    sched = {"task_id": "t-1", "agent": "a", "sub_index": 0, "inputs": ["x-1"], "reason": "match"}
    apply(s, Event(RUN, EventKind.TASK_SCHEDULED, sched, 1.0, seq=1))
    body = {
        "task_id": "t-1",
        "agent": "a",
        "call_index": 3,
        "model": "m",
        "request": {},
        "response": "{}",
        "tokens_in": 5,
        "tokens_out": 7,
        "cost": 0.25,
        "latency_ms": 9.5,
        "tool_calls": [{"id": "c"}],
        "attempt": 2,
    }
    apply(s, Event(RUN, EventKind.MODEL_CALLED, body, 2.0, seq=4))
    c = s.calls[("t-1", 3)]
    assert (c.task_id, c.call_index, c.model, c.response) == ("t-1", 3, "m", "{}")
    assert (c.tokens_in, c.tokens_out, c.cost, c.latency_ms) == (5, 7, 0.25, 9.5)
    assert (c.seq, c.tool_calls, c.attempt) == (4, [{"id": "c"}], 2)
    t, a = s.tasks["t-1"], s.agents["a"]
    assert (t.calls, t.tokens_in, t.tokens_out, t.cost) == (1, 5, 7, 0.25)
    assert (a.calls, a.tokens_in, a.tokens_out, a.cost) == (1, 5, 7, 0.25)
