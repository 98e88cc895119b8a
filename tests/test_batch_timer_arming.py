"""A batch timer is armed only for a batch the state still buffers (issue 14 (a)).

A committed unit (or group of units) is acted on after the state has folded all of
it: units that buffered a batch the same commit then filled must not start a timer
for it (each one did, and the act's ``prune`` cancelled it again, on the path to the
task the full batch scheduled). A batch left partial still gets its timer.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flock_es import BatchSpec, Flock, flock_type
from flock_es.runtime.work import Work


@flock_type
class BtItem(BaseModel):
    n: int


@flock_type
class BtNote(BaseModel):
    n: int


@flock_type
class BtSum(BaseModel):
    total: int


def _spied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    spawn = Work.spawn

    def spy(self: Work, coro: Any, name: str, context: Any = None) -> Any:
        names.append(name)
        return spawn(self, coro, name, context)

    monkeypatch.setattr(Work, "spawn", spy)
    return names


async def _run(db: Path, size: int) -> tuple[list[int], bool]:
    flock = Flock(db=db)
    for i in range(3):
        flock.agent(f"note{i}").consumes(BtItem).publishes(BtNote).with_function(
            lambda x: BtNote(n=x.n)
        )

    def tally(batch: list[BtNote]) -> BtSum:
        return BtSum(total=len(batch))

    flock.agent("tally").consumes(
        BtNote, batch=BatchSpec(size=size, timeout=timedelta(seconds=30))
    ).publishes(BtSum).with_function(tally)
    await flock.publish(BtItem(n=1))
    idle = await flock.run_until_idle(timeout=0.2)
    sums = [s.total for s in await flock.store.get_by_type(BtSum)]
    await flock.close()
    return sums, idle


async def test_a_batch_filled_by_the_commit_that_buffered_it_arms_no_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = _spied(monkeypatch)
    sums, idle = await _run(tmp_path / "full.db", size=3)
    assert sums == [3] and idle
    assert not [n for n in names if n.startswith("flock-es:batch:")]


async def test_a_partial_batch_still_arms_its_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = _spied(monkeypatch)
    sums, idle = await _run(tmp_path / "partial.db", size=4)
    assert sums == [] and not idle  # the batch waits for its 30 s timeout
    assert [n for n in names if n.startswith("flock-es:batch:")] == ["flock-es:batch:tally"]
