"""Replay reads the record a page at a time (``Lookahead.PAGE``) and indexes the
completions it reads ahead (``RecordIndex``): how far it has read never changes what
it reports, nor where."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.domain.events import Event, EventKind
from flock_es.log import LogReader
from flock_es.runtime.replay import Replayer
from flock_es.runtime.replay_report import ReplayReport
from flock_es.runtime.replay_stream import Lookahead, RecordIndex


@flock_type
class PItem(BaseModel):
    n: int


@flock_type
class POut(BaseModel):
    n: int


def answer(off: int | None) -> Callable[[PItem], POut]:
    return lambda x: POut(n=x.n + (1 if x.n == off else 0))


def program(db: Path, off_at: int | None = None) -> Flock:
    """Three agents on every item; with ``off_at``, one of them answers differently there."""
    flock = Flock(db=db)
    for name in ("a", "b", "c"):
        fn = answer(off_at if name == "b" else None)
        flock.agent(name).consumes(PItem).publishes(POut).with_function(fn)
    return flock


async def replayed(db: Path, run_id: str, flock: Flock) -> ReplayReport:
    with LogReader(db) as reader:
        return await Replayer(reader.iter_events(run_id), flock.agents).run()


@pytest.mark.parametrize("page", [1, 5, 64, 10_000])
async def test_the_same_report_however_far_the_record_is_read(
    db_path: Path, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    flock = program(db_path)
    for i in range(40):  # one transaction per publish: many small units, as workload (b)
        await flock.publish(PItem(n=i))
    assert await flock.run_until_idle()
    await flock.close()
    monkeypatch.setattr(Lookahead, "PAGE", page)
    same = await replayed(db_path, flock.run_id, program(db_path))
    assert same.identical, same.divergence
    report = await replayed(db_path, flock.run_id, program(db_path, off_at=33))
    assert report.divergence is not None
    with LogReader(db_path) as reader:
        first = next(
            e.seq
            for e in reader.iter_events(flock.run_id)
            if e.kind is EventKind.ARTIFACT_PUBLISHED
            and e.body.get("produced_by") == "b"
            and e.body["payload"] == {"n": 33}
        )
    div = report.divergence
    assert (div.seq, div.agent, div.expected["payload"], div.actual["payload"]) == (
        first,
        "b",
        {"n": 33},
        {"n": 34},
    )
    assert report.events == same.events  # the rest is counted, read to the end


def _done(tid: str, ts: float) -> Event:
    body = {"task_id": tid, "agent": "a", "outputs": [], "attempt": 1}
    return Event("r-1", EventKind.TASK_COMPLETED, body, ts, 1)


def _called(tid: str, index: int) -> Event:
    body = {"task_id": tid, "call_index": index, "request": {"i": index}}
    return Event("r-1", EventKind.MODEL_CALLED, body, 1.0, 1)


def test_a_transaction_forgets_its_own_completions_only() -> None:
    index = RecordIndex()
    for e in [_called("t-1", 0), _called("t-1", 1), _done("t-1", 1.0), _done("t-2", 1.0)]:
        index.note(e)
    for e in [_called("t-3", 0), _done("t-3", 2.0), _done("t-4", 3.0)]:  # read ahead
        index.note(e)
    index.note(_done("t-1", 1.0))  # a completion noted twice is forgotten once
    assert index.end_unit(0.5) == []  # a transaction that completed nothing
    assert index.end_unit(1.0) == ["t-1", "t-2"]
    assert list(index.completion) == ["t-3", "t-4"] and list(index.requests) == [("t-3", 0)]
    assert index.end_unit(2.0) == ["t-3"] and not index.requests
    assert index.end_unit(3.0) == ["t-4"] and not index.completion and not index.ends
