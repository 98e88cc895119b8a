"""The compact fold (run, resume, replay): it forgets completed tasks and keeps what
decisions read exactly as the full fold (``show``, the TUI, export) has it."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.cli.progress import own_work
from flock_es.domain.events import Event, EventKind, TaskStatus
from flock_es.log.reader import LogReader
from flock_es.projection import fold
from flock_es.projection.fold import SPANS_HELD, artifact_view, compacted
from flock_es.projection.state import ArtifactView, RunState
from flock_es.runtime.replay import Replayer
from tests.property_budget import examples
from tests.test_fold_properties import event_lists

_AFTER_END = {
    EventKind.TASK_SCHEDULED,
    EventKind.TOOL_CALLED,
    EventKind.TASK_STARTED,
    EventKind.TASK_COMPLETED,
    EventKind.TASK_FAILED,
    EventKind.MODEL_CALLED,
}


_PAID = {EventKind.MODEL_CALLED, EventKind.TOOL_CALLED}


def well_formed(evs: list[Event]) -> list[Event]:
    """``evs`` without what no real log holds: events about a task after its completion
    (its scheduling included) or before it was scheduled, and an artifact published twice (ids are deterministic and an output commits with
    its task's completion, tests/test_crash.py)."""
    done: set[str] = set()
    scheduled: set[str] = set()
    published: set[str] = set()
    out = []
    for e in evs:
        tid = e.body.get("task_id")
        if e.kind in _AFTER_END and tid in done:
            continue
        if e.kind in _PAID and tid not in scheduled:
            continue  # a task runs only once its task.scheduled is durable
        if e.kind is EventKind.TASK_SCHEDULED:
            scheduled.add(str(tid))
        if e.kind is EventKind.ARTIFACT_PUBLISHED:
            if e.body["id"] in published:
                continue
            published.add(e.body["id"])
        if e.kind is EventKind.TASK_COMPLETED:
            done.add(str(tid))
        out.append(e)
    return out


def decisions_read(s: RunState) -> dict[str, Any]:
    """What decide, the engine, resume and the summary read of a state."""
    pending = {
        t.id: (t.agent, t.sub_index, t.inputs, t.status, t.attempt, t.context, t.calls)
        for t in s.pending_tasks()
    }
    agents = {
        a.name: (a.scheduled, a.breaker_base, a.tripped, a.done, a.failed, a.running, a.calls)
        for a in s.agents.values()
    }
    totals = s.totals()
    held_off = set(s.undecided)
    return {
        "pending": pending,
        "failed": {t.id: (t.error, t.transient) for t in s.failed_tasks()},
        "by_status": s.tasks_by_status(),
        "agents": agents,
        "batches": s.batches,
        "gates": s.gates,
        "unreleased": s.unreleased,
        "undecided": list(s.undecided),
        # The views pending work needs; the others a compact state may let go of, and
        # it holds none of an undecided artifact (its decision reads it from the log).
        "artifacts": {a: s.artifacts.get(a) for a in sorted(s.pinned_artifacts() - held_off)},
        "type_counts": s.type_counts,
        "calls": (totals["calls"], totals["tokens_in"], totals["tokens_out"]),
        "cost": totals["cost"] is None,
        "seq": (s.last_seq, s.events),
    }


@settings(max_examples=examples(200), deadline=None)
@given(event_lists())
def test_the_compact_fold_agrees_with_the_full_one_on_what_decisions_read(
    evs: list[Event],
) -> None:
    evs = well_formed(evs)
    logged = {
        e.body["id"]: artifact_view(e.body, e.seq, e.ts)  # type: ignore[arg-type]
        for e in evs
        if e.kind is EventKind.ARTIFACT_PUBLISHED
    }
    full, compact = fold(evs), fold(evs, compact=True)
    # A compact fold holds no view of a deferred artifact; the runtime reads those that
    # pending work pins from the log (RunArtifacts.hold_pinned) before it acts.
    assert decisions_read(held_pinned(compact, logged)) == decisions_read(full)
    # Letting go of every durable view nothing pending needs, at each artifact: what
    # the runtime reads (the state's view, else the log's: RunArtifacts) is the same.
    pruning = fold(evs, RunState(compact=True, prune_at=1))
    for aid, view in pruning.artifacts.items():
        assert full.artifacts[aid] == view
    for aid, view in logged.items():
        if aid in pruning.artifacts:
            continue
        view.released = view.visibility.get("kind") == "after" and aid not in pruning.unreleased
        pruning.artifacts[aid] = view
    assert decisions_read(pruning) == decisions_read(full)
    assert not any(t.status is TaskStatus.COMPLETED for t in compact.tasks.values())
    cost_full, cost_compact = full.totals()["cost"], compact.totals()["cost"]
    if cost_full is not None and cost_compact is not None:
        assert math.isclose(cost_full, cost_compact, abs_tol=1e-9)
    # Compacting a full state gives what folding compactly from the start gives.
    assert decisions_read(compacted(fold(evs))) == decisions_read(held_pinned(compact, logged))


def held_pinned(s: RunState, logged: dict[str, ArtifactView]) -> RunState:
    """``s`` with the pinned views it does not hold, from ``logged`` (as ``hold_pinned``)."""
    for aid in s.pinned_artifacts():
        if aid not in s.artifacts and aid in logged:
            s.artifacts[aid] = logged[aid]
    return s


@settings(max_examples=examples(100), deadline=None)
@given(event_lists(), event_lists())
def test_a_compact_fold_composes(head: list[Event], tail: list[Event]) -> None:
    evs = well_formed(head + tail)
    cut = len(well_formed(head))
    assert fold(evs[cut:], fold(evs[:cut], compact=True)) == fold(evs, compact=True)


def _finished_runs(n: int) -> list[Event]:
    evs = [Event(run_id="r", kind=EventKind.RUN_STARTED, body={"model": "m", "agents": []}, ts=0)]
    for i in range(n):
        tid, aid = f"t-{i}", f"a-{i}"
        bodies: list[tuple[EventKind, dict[str, Any]]] = [
            (
                EventKind.TASK_SCHEDULED,
                {"task_id": tid, "agent": "x", "sub_index": 0, "inputs": []},
            ),
            (EventKind.TASK_STARTED, {"task_id": tid, "agent": "x", "attempt": 1}),
            (
                EventKind.MODEL_CALLED,
                {
                    "task_id": tid,
                    "agent": "x",
                    "call_index": 0,
                    "model": "m",
                    "request": {},
                    "response": "{}" * 100,
                },
            ),
            (EventKind.TASK_COMPLETED, {"task_id": tid, "agent": "x", "outputs": [aid]}),
        ]
        evs.extend(
            Event(run_id="r", kind=k, body=b, ts=float(i + (k is EventKind.TASK_COMPLETED)))
            for k, b in bodies
        )
    return evs


def test_the_compact_state_of_finished_runs_does_not_grow_with_their_number() -> None:
    small, large = fold(_finished_runs(10), compact=True), fold(_finished_runs(2000), compact=True)
    for s in (small, large):
        assert not s.tasks and not s.calls and not s.tool_calls
        assert len(s.finished_spans) == 1  # back to back runs merge into one span
    assert large.tasks_by_status()["completed"] == 2000
    assert large.totals()["calls"] == 2000 and large.agents["x"].done == 2000
    # Not even their ids: a log never schedules a task twice nor records for it after
    # its completion (fold.forget_task; tests/test_crash.py checks real logs for both).
    assert large.finished == 2000 and large.tasks_by_status()["completed"] == 2000


@flock_type
class CNote(BaseModel):
    text: str


@flock_type
class CPair(BaseModel):
    text: str


@flock_type
class CDone(BaseModel):
    text: str


def _pair(n: CNote) -> list[CPair]:
    return [CPair(text=n.text), CPair(text=n.text + "!")]


def _program() -> Flock:
    flock = Flock()
    flock.agent("split").consumes(CNote).publishes(CPair).with_function(_pair)
    flock.agent("echo").consumes(CPair).publishes(CDone).with_function(lambda p: CDone(text=p.text))
    return flock


async def test_replay_keeps_a_compact_state_and_checks_every_output(db_path: Path) -> None:
    flock = _program()
    flock.db_path = db_path
    await flock.publish_many([CNote(text="a"), CNote(text="b")])
    await flock.run_until_idle()
    await flock.close()
    with LogReader(db_path) as reader:
        recorded = fold(reader.iter_events(flock.run_id))
        report = await Replayer(reader.iter_events(flock.run_id), _program().agents).run()
    assert report.identical, report.divergence
    # Each task re-executed once, though its second output follows its completion.
    assert report.tasks_replayed == recorded.tasks_by_status()["completed"]
    assert report.tasks_replayed == len(recorded.tasks)


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), max_size=30),
    st.randoms(use_true_random=False),
)
def test_the_compact_fold_keeps_the_union_of_the_finished_runs_spans(
    runs: list[tuple[int, int]], rnd: Any
) -> None:
    evs = [Event(run_id="r", kind=EventKind.RUN_STARTED, body={"model": "m", "agents": []}, ts=0)]
    for i, (start, _) in enumerate(runs):
        body = {"task_id": f"t-{i}", "agent": "x", "sub_index": 0, "inputs": []}
        evs.append(Event(run_id="r", kind=EventKind.TASK_SCHEDULED, body=body, ts=0.0))
        started = {"task_id": f"t-{i}", "agent": "x", "attempt": 1}
        evs.append(Event(run_id="r", kind=EventKind.TASK_STARTED, body=started, ts=float(start)))
    order = list(range(len(runs)))
    rnd.shuffle(order)  # runs finish in any order
    for i in order:
        start, length = runs[i]
        done = {"task_id": f"t-{i}", "agent": "x", "outputs": []}
        evs.append(
            Event(run_id="r", kind=EventKind.TASK_COMPLETED, body=done, ts=float(start + length))
        )
    state = fold(evs, compact=True)
    spans = [(float(s), float(s + n)) for s, n in runs]
    assert state.finished_spans == _union([spans[i] for i in order])
    assert state.finished_busy == sum(n for _, n in runs)


def test_the_compact_fold_sums_old_spans_and_keeps_the_active_time_exact() -> None:
    # 5,000 executions, started and finished in time order, overlapping their neighbours
    # now and then: more disjoint spans than a compact state holds.
    rnd = random.Random(7)
    runs = [(3.0 * i + rnd.random(), rnd.choice((0.5, 1.0, 4.0))) for i in range(5000)]
    timed: list[tuple[float, int, EventKind, dict[str, Any]]] = []
    for i, (start, length) in enumerate(runs):
        tid = f"t-{i}"
        sched = {"task_id": tid, "agent": "x", "sub_index": 0, "inputs": []}
        timed.append((start, 0, EventKind.TASK_SCHEDULED, sched))
        timed.append((start, 1, EventKind.TASK_STARTED, {"task_id": tid, "agent": "x"}))
        done = {"task_id": tid, "agent": "x", "outputs": []}
        timed.append((start + length, 2, EventKind.TASK_COMPLETED, done))
    timed.sort(key=lambda x: (x[0], x[1]))
    evs = [Event(run_id="r", kind=EventKind.RUN_STARTED, body={"model": "m", "agents": []}, ts=0)]
    evs += [Event(run_id="r", kind=k, body=b, ts=ts) for ts, _, k, b in timed]
    state = fold(evs, compact=True)
    assert len(state.finished_spans) <= SPANS_HELD and state.finished_active > 0
    busy, active = own_work(state, None)
    union = _union([(s, s + n) for s, n in runs])
    assert math.isclose(busy, sum(n for _, n in runs))
    assert math.isclose(active, sum(e - s for s, e in union))
    assert math.isclose(active, own_work(fold(evs), None)[1])  # the full fold's


def test_tasks_scheduled_up_front_keep_the_active_time_exact() -> None:
    # Workload (b)'s shape: one publish schedules every task, which then run one after
    # another (inline, no task.started): the oldest pending task bounds the cutoff, so
    # the spans are halved without a walk over the thousands still pending, and once the
    # last ones run the cutoff moves on. Busy and active time stay those of the full fold.
    n = 3 * SPANS_HELD
    evs = [Event(run_id="r", kind=EventKind.RUN_STARTED, body={"model": "m", "agents": []}, ts=0)]
    for i in range(n):
        sched = {"task_id": f"t-{i}", "agent": "x", "sub_index": 0, "inputs": []}
        evs.append(Event(run_id="r", kind=EventKind.TASK_SCHEDULED, body=sched, ts=1.0))
    for i in range(n):
        done = {"task_id": f"t-{i}", "agent": "x", "outputs": [], "attempt": 1}
        done["duration_ms"] = 500.0
        evs.append(Event(run_id="r", kind=EventKind.TASK_COMPLETED, body=done, ts=2.0 + i))
    state = fold(evs, compact=True)
    assert len(state.finished_spans) <= SPANS_HELD and state.finished_active > 0
    busy, active = own_work(state, None)
    assert math.isclose(busy, n * 0.5)
    assert math.isclose(active, n * 0.5)
    assert math.isclose(active, own_work(fold(evs), None)[1])  # the full fold's
