"""JoinSpec: correlated AND gates keyed on the payload, with windows, through the public API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flock_es import BatchSpec, Flock, JoinSpec, flock_type
from flock_es.log import LogReader
from flock_es.projection import fold


@flock_type
class XRay(BaseModel):
    patient: str
    n: int = 0


@flock_type
class Lab(BaseModel):
    patient: str
    n: int = 0


@flock_type
class Diagnosis(BaseModel):
    patients: list[str]
    members: list[str]


def kinds(db: Path, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    with LogReader(db) as r:
        return [(e.kind.value, e.body) for e in r.events(run_id)]


def diagnose(seen: list[list[str]]):  # type: ignore[no-untyped-def]
    def fn(items: list[BaseModel]) -> Diagnosis:
        names = [f"{type(i).__name__}:{i.patient}{i.n}" for i in items]  # type: ignore[attr-defined]
        seen.append(names)
        return Diagnosis(patients=[i.patient for i in items], members=names)  # type: ignore[attr-defined]

    return fn


def by_patient(r: XRay | Lab) -> str:
    return r.patient


async def test_join_pairs_only_equal_keys(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    flock.agent("radiologist").consumes(XRay, Lab, join=JoinSpec(by=by_patient)).with_function(
        diagnose(seen)
    ).publishes(Diagnosis)
    await flock.publish(XRay(patient="p1"))
    await flock.publish(Lab(patient="p2"))
    await flock.run_until_idle()
    assert seen == []
    await flock.publish(Lab(patient="p1"))
    await flock.run_until_idle()
    assert seen == [["XRay:p10", "Lab:p10"]]
    waiting = {g.key: g.members for _, g in flock.state.waiting_gates()}
    assert list(waiting) == ["p2"]
    await flock.publish(XRay(patient="p2", n=1))
    await flock.run_until_idle()
    await flock.close()
    assert seen[1] == ["XRay:p21", "Lab:p20"]
    reasons = [b["reason"] for k, b in kinds(db_path, flock.run_id) if k == "task.scheduled"]
    assert reasons == ["join", "join"]


async def test_count_window_expires_a_group_and_records_it(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    flock.agent("r").consumes(XRay, Lab, join=JoinSpec(by=by_patient, within=2)).with_function(
        diagnose(seen)
    ).publishes(Diagnosis)
    await flock.publish(XRay(patient="old"))
    for p in ("a", "b"):
        await flock.publish(XRay(patient=p))
    await flock.run_until_idle()
    assert {g.key for _, g in flock.state.waiting_gates()} == {"old", "a", "b"}
    await flock.publish(XRay(patient="c"))  # the third arrival after "old": it expires
    await flock.publish(Lab(patient="old"))  # too late: opens a new group instead
    await flock.run_until_idle()
    await flock.close()
    assert seen == []
    expired = [b for k, b in kinds(db_path, flock.run_id) if k == "join.expired"]
    assert [(b["key"], b["reason"], len(b["members"])) for b in expired[:1]] == [
        ("old", "count", 1)
    ]
    assert flock.state.expired_joins[0]["key"] == "old"
    # The reader's fold agrees with the live state on what still waits.
    with LogReader(db_path) as r:
        state = fold(r.events(flock.run_id))
    live = {g.key: g.members for _, g in flock.state.waiting_gates()}
    assert {g.key: g.members for _, g in state.waiting_gates()} == live


async def test_time_window_expiry_is_a_recorded_event(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    join = JoinSpec(by=by_patient, within=timedelta(milliseconds=200))
    flock.agent("r").consumes(XRay, Lab, join=join).with_function(diagnose(seen)).publishes(
        Diagnosis
    )
    await flock.publish(XRay(patient="alone"))
    await flock.publish(XRay(patient="pair"))
    await flock.publish(Lab(patient="pair"))
    await flock.run_until_idle()  # waits for the window of "alone", like a batch timeout
    await flock.close()
    assert seen == [["XRay:pair0", "Lab:pair0"]]
    expired = [b for k, b in kinds(db_path, flock.run_id) if k == "join.expired"]
    assert [(b["key"], b["reason"]) for b in expired] == [("alone", "time")]
    assert not flock.state.waiting_gates()


async def test_a_completed_join_does_not_wait_for_its_window(db_path: Path) -> None:
    flock = Flock(db=db_path)
    join = JoinSpec(by=by_patient, within=timedelta(hours=1))
    flock.agent("r").consumes(XRay, Lab, join=join).with_function(diagnose([])).publishes(Diagnosis)
    await flock.publish(XRay(patient="p"))
    await flock.publish(Lab(patient="p"))
    await flock.run_until_idle()  # would hang for an hour if the timer outlived the group
    await flock.close()
    assert len(await flock.store.get_by_type(Diagnosis)) == 1


async def test_join_with_batch_groups_the_joined_sets(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    flock.agent("board").consumes(
        XRay, Lab, join=JoinSpec(by=by_patient), batch=BatchSpec(size=2)
    ).with_function(diagnose(seen)).publishes(Diagnosis)
    for p in ("p1", "p2", "p3"):
        await flock.publish(XRay(patient=p))
    for p in ("p3", "p1"):
        await flock.publish(Lab(patient=p))
    await flock.run_until_idle()
    # Two joined sets make one batch of four artifacts, set by set.
    assert seen == [["XRay:p30", "Lab:p30", "XRay:p10", "Lab:p10"]]
    await flock.publish(Lab(patient="p2"))
    await flock.run_until_idle()
    batches = flock.state.batches
    (waiting,) = batches.values()
    assert waiting.groups == [waiting.members] and len(waiting.members) == 2
    await flock.close()
    events = kinds(db_path, flock.run_id)
    assert [b["reason"] for k, b in events if k == "task.scheduled"] == ["batch_size"]
    buffered = [b for k, b in events if k == "batch.buffered"]
    assert all(len(b["group"]) == 2 for b in buffered)


async def test_join_with_batch_timeout_flushes_partial_sets(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    flock.agent("board").consumes(
        XRay, Lab, join=JoinSpec(by=by_patient), batch=BatchSpec(size=5, timeout=0.2)
    ).with_function(diagnose(seen)).publishes(Diagnosis)
    await flock.publish(XRay(patient="p1"))
    await flock.publish(Lab(patient="p1"))
    await flock.publish(XRay(patient="p2"))
    await flock.run_until_idle()
    await flock.close()
    assert seen == [["XRay:p10", "Lab:p10"]]
    assert [g.key for _, g in flock.state.waiting_gates()] == ["p2"]


async def test_a_raising_join_key_is_recorded_as_a_predicate_failure(db_path: Path) -> None:
    flock = Flock(db=db_path)

    def key(r: XRay | Lab) -> str:
        if r.n < 0:
            raise KeyError("no patient id")
        return r.patient

    flock.agent("r").consumes(XRay, Lab, join=JoinSpec(by=key)).with_function(
        diagnose([])
    ).publishes(Diagnosis)
    await flock.publish(XRay(patient="p", n=-1))
    await flock.run_until_idle()
    await flock.close()
    failures = [b for k, b in kinds(db_path, flock.run_id) if k == "predicate.failed"]
    assert len(failures) == 1 and "no patient id" in str(failures[0]["error"])
    assert not flock.state.waiting_gates()
