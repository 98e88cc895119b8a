"""AND gates and count gates through the public API, on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import BatchSpec, EventKind, Flock, JoinSpec, flock_type
from flock_es.errors import DefinitionError
from flock_es.log import LogReader


@flock_type
class GateA(BaseModel):
    n: int
    key: str = "k"


@flock_type
class GateB(BaseModel):
    n: int
    key: str = "k"


@flock_type
class Fired(BaseModel):
    members: list[str]


def log(db: Path, run_id: str) -> list[tuple[str, dict[str, object]]]:
    with LogReader(db) as r:
        return [(e.kind.value, e.body) for e in r.events(run_id)]


def collector(seen: list[list[str]]):  # type: ignore[no-untyped-def]
    def fn(items: list[BaseModel] | BaseModel) -> Fired:
        items = items if isinstance(items, list) else [items]
        names = [f"{type(i).__name__[-1]}{i.n}" for i in items]  # type: ignore[attr-defined]
        seen.append(names)
        return Fired(members=names)

    return fn


async def test_and_gate_fires_once_both_types_are_present(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    flock.agent("pair").consumes(GateA, GateB).with_function(collector(seen)).publishes(Fired)
    await flock.publish(GateA(n=1))
    await flock.run_until_idle()
    assert seen == []  # one A alone does not fire
    assert [g.members for _, g in flock.state.waiting_gates()]
    await flock.publish(GateB(n=1))
    await flock.run_until_idle()
    await flock.close()
    assert seen == [["A1", "B1"]]
    scheduled = [b for k, b in log(db_path, flock.run_id) if k == "task.scheduled"]
    assert [b["reason"] for b in scheduled] == ["gate"]
    assert not flock.state.waiting_gates()


async def test_surplus_waits_for_the_next_firing_and_is_never_dropped(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    flock.agent("pair").consumes(GateA, GateB).with_function(collector(seen)).publishes(Fired)
    for i in (1, 2):
        await flock.publish(GateA(n=i))
    await flock.publish(GateB(n=1))
    await flock.run_until_idle()
    assert seen == [["A1", "B1"]]  # Flock 0.5.7 loses A2 here
    waiting = flock.state.waiting_gates()
    assert len(waiting) == 1 and len(waiting[0][1].members) == 1
    await flock.publish(GateB(n=2))
    await flock.run_until_idle()
    await flock.close()
    assert seen == [["A1", "B1"], ["A2", "B2"]]


async def test_count_gate_needs_two_a_and_one_b(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    flock.agent("trio").consumes(GateA, GateA, GateB).with_function(collector(seen)).publishes(
        Fired
    )
    await flock.publish(GateA(n=1))
    await flock.publish(GateB(n=1))
    await flock.run_until_idle()
    assert seen == []
    await flock.publish(GateA(n=2))
    await flock.publish(GateA(n=3))
    await flock.publish(GateB(n=2))
    await flock.run_until_idle()
    assert seen == [["A1", "A2", "B1"]]  # A3 and B2 wait for one more A
    await flock.publish(GateA(n=4))
    await flock.run_until_idle()
    await flock.close()
    assert seen == [["A1", "A2", "B1"], ["A3", "A4", "B2"]]
    assert not flock.state.waiting_gates()


async def test_gate_with_a_model_agent_sends_both_inputs(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("pair").consumes(GateA, GateB).publishes(Fired)
    await flock.publish(GateB(n=7))
    await flock.publish(GateA(n=3))
    await flock.run_until_idle()
    await flock.close()
    calls = [b for k, b in log(db_path, flock.run_id) if k == "model.called"]
    assert len(calls) == 1
    text = str(calls[0]["request"])
    assert "GateA" in text and "GateB" in text
    assert len(await flock.store.get_by_type(Fired)) == 1


async def test_batch_dict_form_is_accepted(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)
    flock.agent("batch").consumes(GateA, batch={"size": 3, "timeout": 5}).with_function(
        collector(seen)
    ).publishes(Fired)
    for i in range(1, 7):
        await flock.publish(GateA(n=i))
    await flock.run_until_idle()
    await flock.close()
    assert seen == [["A1", "A2", "A3"], ["A4", "A5", "A6"]]
    spec = flock.state.agents["batch"].subscriptions[0]
    assert spec["batch_size"] == 3 and spec["batch_timeout"] == 5.0


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda f: f.agent("x").consumes(), "needs at least one type"),
        (lambda f: f.agent("x").consumes(GateA, batch=BatchSpec()), "size, a timeout"),
        (lambda f: f.agent("x").consumes(GateA, batch={}), "size, a timeout"),
        (lambda f: f.agent("x").consumes(GateA, batch={"count": 3}), "unknown BatchSpec"),
        (lambda f: f.agent("x").consumes(GateA, batch=BatchSpec(timeout=-1)), "positive"),
        (lambda f: f.agent("x").consumes(GateA, where=5), "callable"),
        (lambda f: f.agent("x").consumes(GateA, where=[lambda a: True, "no"]), "callable"),
        (lambda f: JoinSpec(by=lambda a: a.key, within=-1), "positive"),
        (lambda f: JoinSpec(by=lambda a: a.key, within=timedelta(seconds=-5)), "positive"),
        (lambda f: JoinSpec(by="key", within=3), "callable"),  # type: ignore[arg-type]
        (lambda f: f.agent("x").consumes(GateA, join="key"), "JoinSpec"),
        (lambda f: f.agent("x").consumes(GateA, priority="high"), "priority"),
        (lambda f: Flock(max_agent_iterations=0), "max_agent_iterations"),
    ],
)
def test_bad_declarations_fail_at_load_time(declare, message: str, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DefinitionError, match=message):
        declare(Flock(db=db_path))


async def test_a_raising_predicate_is_no_match_and_is_recorded(db_path: Path) -> None:
    seen: list[list[str]] = []
    flock = Flock(db=db_path)

    def picky(a: GateA) -> bool:
        if a.n == 2:
            raise ValueError("cannot judge 2")
        return True

    flock.agent("picky").consumes(GateA, where=picky).with_function(collector(seen)).publishes(
        Fired
    )
    for i in (1, 2, 3):
        await flock.publish(GateA(n=i))
    await flock.run_until_idle()
    await flock.close()
    assert sorted(map(tuple, seen)) == [("A1",), ("A3",)]
    failures = [b for k, b in log(db_path, flock.run_id) if k == EventKind.PREDICATE_FAILED]
    assert len(failures) == 1
    assert "ValueError: cannot judge 2" in str(failures[0]["error"])
    assert flock.state.predicate_errors[0]["agent"] == "picky"


def test_a_bad_declaration_is_one_line_from_the_cli(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    prog = tmp_path / "bad.py"
    prog.write_text(
        "from pydantic import BaseModel\n"
        "from flock_es import Flock, JoinSpec, flock_type\n"
        "@flock_type\n"
        "class L(BaseModel):\n    k: str\n"
        "@flock_type\n"
        "class R(BaseModel):\n    k: str\n"
        "flock = Flock()\n"
        "flock.agent('j').consumes(L, R, join=JoinSpec(by=lambda x: x.k, within=-2))\n"
        "async def main():\n    pass\n"
    )
    out = run_cli(["run", prog, "--db", tmp_path / "x.db"], cwd=tmp_path)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "within" in lines[0] and "positive" in lines[0], out.stderr


async def test_every_gate_and_join_body_validates(db_path: Path) -> None:
    from flock_es.domain.validate import check_body

    flock = Flock(db=db_path, max_agent_iterations=1)
    flock.agent("pair").consumes(
        GateA,
        GateB,
        join=JoinSpec(by=lambda x: x.key, within=timedelta(milliseconds=50)),
        batch=BatchSpec(size=2, timeout=0.05),
    ).with_function(collector([])).publishes(Fired)
    for key in ("a", "b", "c", "d"):
        await flock.publish(GateA(n=1, key=key))
        await flock.publish(GateB(n=1, key=key))
    await flock.publish(GateA(n=9, key="lonely"))
    await flock.run_until_idle()
    await flock.close()
    kinds = set()
    for kind, body in log(db_path, flock.run_id):
        check_body(kind, body)
        kinds.add(kind)
    assert {"gate.buffered", "batch.buffered", "join.expired", "circuit.tripped"} <= kinds
