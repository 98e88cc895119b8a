"""Property tests for the fold: it is pure, total, and folding composes."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from flock_es.domain.events import BODIES, Event, EventKind
from flock_es.domain.validate import body_adapter
from flock_es.models.base import ModelRequest
from flock_es.models.offline import OfflineModel
from flock_es.projection import evolve, fold
from tests.property_budget import examples

RUN = "r-prop"
ARTS = [f"a-{i}" for i in range(4)]
TASKS = [f"t-{i}" for i in range(4)]
AGENTS = ["x", "y"]
CORE_KINDS = [
    EventKind.RUN_STARTED,
    EventKind.RUN_FINISHED,
    EventKind.ARTIFACT_PUBLISHED,
    EventKind.TASK_SCHEDULED,
    EventKind.TASK_STARTED,
    EventKind.TASK_COMPLETED,
    EventKind.TASK_FAILED,
    EventKind.MODEL_CALLED,
    EventKind.BATCH_BUFFERED,
    EventKind.PREDICATE_FAILED,
    EventKind.ARTIFACT_DECIDED,
]


def _body(kind: EventKind, draw: st.DrawFn) -> dict[str, object]:
    task = draw(st.sampled_from(TASKS))
    agent = draw(st.sampled_from(AGENTS))
    art = draw(st.sampled_from(ARTS))
    if kind is EventKind.RUN_STARTED:
        return {
            "model": "offline",
            "agents": [
                {"name": a, "subscriptions": [{"index": 0, "types": ["T"], "batch_size": 2}]}
                for a in AGENTS
            ],
        }
    if kind is EventKind.RUN_FINISHED:
        return {"status": draw(st.sampled_from(["completed", "failed", "interrupted"]))}
    if kind is EventKind.ARTIFACT_PUBLISHED:
        published: dict[str, object] = {
            "id": art,
            "type": "T",
            "payload": {"v": draw(st.integers(0, 3))},
            "produced_by": agent,
        }
        if draw(st.booleans()):  # a large publish_many's: decided at its artifact.decided
            published["deferred"] = True
        return published
    if kind is EventKind.ARTIFACT_DECIDED:
        return {"id": art}
    if kind is EventKind.TASK_SCHEDULED:
        reason = draw(st.sampled_from(["match", "batch_size", "batch_timeout"]))
        inputs = draw(st.lists(st.sampled_from(ARTS), min_size=1, max_size=3))
        return {"task_id": task, "agent": agent, "sub_index": 0, "inputs": inputs, "reason": reason}
    if kind is EventKind.TASK_STARTED:
        body: dict[str, object] = {"task_id": task, "agent": agent}
        body["attempt"] = draw(st.integers(1, 3))
        worker = draw(st.sampled_from([None, "h:1:0", "h:2:1"]))
        if worker is not None:  # under `flock-es worker`
            body["worker"] = worker
        return body
    if kind is EventKind.TASK_COMPLETED:
        return {"task_id": task, "agent": agent, "outputs": [art]}
    if kind is EventKind.TASK_FAILED:
        return {"task_id": task, "agent": agent, "error": "e", "will_retry": draw(st.booleans())}
    if kind is EventKind.MODEL_CALLED:
        return {
            "task_id": task,
            "agent": agent,
            "call_index": draw(st.integers(0, 2)),
            "model": "offline",
            "request": {},
            "response": "{}",
            "tokens_in": draw(st.integers(0, 50)),
            "tokens_out": draw(st.integers(0, 50)),
            "cost": draw(st.one_of(st.none(), st.floats(0, 1))),
        }
    if kind is EventKind.BATCH_BUFFERED:
        return {
            "agent": agent,
            "sub_index": 0,
            "artifact_id": art,
            "deadline": draw(st.one_of(st.none(), st.floats(0, 10))),
        }
    return {"agent": agent, "sub_index": 0, "artifact_id": art, "error": "boom"}


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    kinds = draw(st.lists(st.sampled_from(CORE_KINDS), max_size=40))
    return [
        Event(run_id=RUN, kind=k, body=_body(k, draw), ts=float(i), seq=i + 1)
        for i, k in enumerate(kinds)
    ]


@settings(max_examples=examples(200), deadline=None)
@given(event_lists(), st.integers(0, 40))
def test_folding_a_prefix_then_the_rest_equals_folding_everything(
    evs: list[Event], cut: int
) -> None:
    cut = min(cut, len(evs))
    whole = fold(evs)
    assert fold(evs[cut:], fold(evs[:cut])) == whole


@settings(max_examples=examples(200), deadline=None)
@given(event_lists())
def test_evolve_is_pure_and_agrees_with_fold(evs: list[Event]) -> None:
    state = fold([])
    for e in evs:
        before = copy.deepcopy(state)
        nxt = evolve(state, e)
        assert state == before  # the input state is untouched
        state = nxt
    assert state == fold(evs)


@settings(max_examples=examples(100), deadline=None)
@given(event_lists(), st.booleans())
def test_pending_tasks_one_at_a_time_are_the_pending_tasks(evs: list[Event], compact: bool) -> None:
    # A worker's claim and a shared run's idle check read them one at a time.
    state = fold(evs, compact=compact)
    assert list(state.iter_pending()) == state.pending_tasks()
    assert state.has_pending_tasks() == bool(state.pending_tasks())


@settings(max_examples=examples(100), deadline=None)
@given(event_lists())
def test_fold_is_deterministic_and_counts_are_consistent(evs: list[Event]) -> None:
    a, b = fold(evs), fold(evs)
    assert a == b
    assert a.events == len(evs)
    for agent in a.agents.values():
        assert agent.running >= 0
    assert sum(len(v) for v in a.by_type.values()) == len(a.artifacts)
    assert a.type_counts == {t: len(v) for t, v in a.by_type.items()}


@st.composite
def any_valid_events(draw: st.DrawFn) -> list[Event]:
    """Events of every kind in BODIES; the offline model fills each body's schema."""
    out = []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(sorted(BODIES)))
        adapter = body_adapter(kind)
        req = ModelRequest(
            model="offline",
            agent=draw(st.sampled_from(AGENTS + TASKS + ARTS)),
            output_schema=adapter.json_schema(),
        )
        body = adapter.dump_python(adapter.validate_json(OfflineModel().answer(req)), mode="json")
        out.append(Event(run_id=RUN, kind=kind, body=body, ts=float(i), seq=i + 1))
    return out


@settings(max_examples=examples(150), deadline=None)
@given(any_valid_events(), st.integers(0, 12))
def test_fold_is_total_over_every_kind_and_composes(evs: list[Event], cut: int) -> None:
    cut = min(cut, len(evs))
    assert fold(evs[cut:], fold(evs[:cut])) == fold(evs)


@settings(max_examples=examples(200), deadline=None)
@given(event_lists())
def test_undecided_holds_the_deferred_artifacts_not_yet_decided_in_publish_order(
    evs: list[Event],
) -> None:
    expected: dict[str, None] = {}
    seen: set[str] = set()
    for e in evs:
        aid = str(e.body.get("id"))
        if e.kind is EventKind.ARTIFACT_PUBLISHED and aid not in seen:
            seen.add(aid)  # a second publication of an id is ignored, as by the fold
            if e.body.get("deferred"):
                expected[aid] = None
        elif e.kind is EventKind.ARTIFACT_DECIDED:
            expected.pop(aid, None)
    state = fold(evs)
    assert list(state.undecided) == list(expected)
    published = [e.body.get("id") for e in evs if e.kind is EventKind.ARTIFACT_PUBLISHED]
    if len(published) == len(set(published)):
        # A compact fold does not hold the ids it let go of (a decided deferred
        # artifact's, a pruned view's), so it cannot tell a second publication of one:
        # it relies on a log publishing each id once, as the runtime does (an id is a
        # digest of what produced it; outputs commit with their task's completion).
        assert list(fold(evs, compact=True).undecided) == list(expected)
    if expected:
        assert state.has_pending_work()  # a run with undecided artifacts is not over
