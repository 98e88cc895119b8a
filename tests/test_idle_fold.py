"""A checkpoint job folds on CPU nothing else wants: its pages are decoded and folded in
a thread under ``SCHED_IDLE``, while its reads (read transactions the run's writer must
wait out to restart its WAL) and its writes (the lock the run's writer waits for) stay
on its own thread, at the normal policy (nice 19), never starved by the run."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

import flock_es.log.snapshot_job as job
from flock_es.errors import DatabaseError
from flock_es.log.idle import IdleWorker
from flock_es.log.ports import EventRow, open_store
from flock_es.projection.snapshot_links import LinkFold
from tests.test_snapshot_chain import _large_log

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread policies")


def _policy() -> int:
    return os.sched_getscheduler(0)


@linux
def test_an_idle_worker_runs_calls_in_an_idle_thread_of_its_own() -> None:
    before = _policy()
    with IdleWorker() as idle:
        assert idle.call(_policy) == os.SCHED_IDLE
        assert idle.call(threading.get_ident) != threading.get_ident()
        assert idle.call(divmod, 7, 2) == (3, 1)
        with pytest.raises(ZeroDivisionError):
            idle.call(divmod, 1, 0)
        assert idle.call(len, "still serving") == 13
    assert _policy() == before  # the caller's thread is not idle


@linux
def test_a_job_folds_idle_and_reads_and_stores_at_the_normal_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "large.db"
    run, _ = _large_log(db, 30)
    plain = tmp_path / "plain.db"
    plain.write_bytes(db.read_bytes())
    seen: dict[str, set[int]] = {"fold": set(), "read": set(), "store": set()}
    fold_page, link = job._fold_page, LinkFold.link
    reader_class = type(open_store(db).reader())
    event_rows = reader_class.event_rows

    def folding(links: LinkFold, rows: list[EventRow]) -> None:
        seen["fold"].add(_policy())
        fold_page(links, rows)

    def reading(self: object, *args: object, **kw: object) -> object:
        seen["read"].add(_policy())
        return event_rows(self, *args, **kw)  # type: ignore[arg-type]

    def linking(self: LinkFold) -> bytes:
        seen["store"].add(_policy())
        return link(self)

    monkeypatch.setattr(job, "_fold_page", folding)
    monkeypatch.setattr(reader_class, "event_rows", reading)
    monkeypatch.setattr(LinkFold, "link", linking)
    assert job.snapshot_now(str(db), run, at_least=1, idle=True)
    assert seen == {"fold": {os.SCHED_IDLE}, "read": {_policy()}, "store": {_policy()}}
    assert _policy() != os.SCHED_IDLE
    # The same link as a fold on one thread.
    assert job.snapshot_now(str(plain), run, at_least=1)
    with open_store(db).reader() as a, open_store(plain).reader() as b:
        assert a.snapshot(run) == b.snapshot(run) is not None


def test_a_job_whose_page_holds_a_damaged_event_stores_nothing(tmp_path: Path) -> None:
    """The page is decoded off the reader (in the idle thread): a body that is not JSON
    is still the DatabaseError a job ends on (exit status 2), not a crash."""
    db = tmp_path / "large.db"
    run, _ = _large_log(db, 30)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE events SET body = '{' WHERE seq = 50")
    with pytest.raises(DatabaseError, match="event 50"):
        job.snapshot_now(str(db), run, at_least=1, idle=True)
    with open_store(db).reader() as log:
        assert log.snapshot(run) is None
