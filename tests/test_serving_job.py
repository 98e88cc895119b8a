"""A live run's one checkpoint job (``snapshot_job.serve``, ``Checkpoints``): it folds
on from where its last checkpoint left off, never from the latest link again, and
the chain it links is the one separate jobs linked (full readers and resume start
from it); the run asks for each checkpoint with a line, and starts a new job only
when it has none. Real processes and files throughout."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flock_es.log.snapshot_job as job_module
from flock_es.log.ports import open_store
from flock_es.log.snapshots import chain, fold_run, start_state
from flock_es.projection import fold
from flock_es.runtime.checkpoints import Checkpoints
from tests.test_compact_state import decisions_read
from tests.test_snapshot_chain import _large_log, _more, _small_links


class _Requests:
    """A run's pipe: one line per call, ``between(i)`` run before the ``i``-th; then its end."""

    def __init__(self, lines: int, between: Callable[[int], None]) -> None:
        self.lines = lines
        self.between = between
        self.read = 0

    def readline(self) -> bytes:
        if self.read == self.lines:
            return b""
        self.between(self.read)
        self.read += 1
        return b"\n"


def _snapshots(db: Path) -> list[int]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT seq FROM snapshots ORDER BY seq")]
    finally:
        con.close()


@pytest.mark.slow
def test_a_serving_job_folds_on_from_its_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "large.db"
    run, _ = _large_log(db, 600, upto=300)
    _small_links(monkeypatch, page=250, segment=2_000)
    starts: list[int] = []

    def counted(*args: Any, **kw: Any) -> Any:
        starts.append(1)
        return start_state(*args, **kw)

    monkeypatch.setattr(job_module, "start_state", counted)
    first: list[int] = []
    evs: list[Any] = []

    def between(i: int) -> None:
        if i == 1:  # the run committed more since the first checkpoint
            first.extend(_snapshots(db))
            evs.extend(_more(db, 600, 300))
        if i == 2:  # nothing new: nothing more stored
            first.append(len(_snapshots(db)))

    assert job_module.serve(str(db), run, 1, _Requests(3, between)) == 0  # type: ignore[arg-type]
    assert starts == [1]  # the latest link decoded once, at the first checkpoint
    seqs = _snapshots(db)
    assert first[-1] == len(seqs) and first[:-1] and set(first[:-1]) < set(seqs)
    assert seqs[-1] == evs[-1].seq
    store = open_store(db)
    with store.reader() as log:
        linked = chain(log, run, seqs[-1])
        assert linked is not None and first[-2] in linked  # one chain across checkpoints
        for at in (first[-2], linked[len(linked) // 2], seqs[-1]):
            prefix = [e for e in evs if e.seq is not None and e.seq <= at]
            state, _ = fold_run(log, run, at)  # show --at
            assert state == fold(prefix)
            compact, _ = fold_run(log, run, at, compact=True)  # resume
            assert decisions_read(compact) == decisions_read(fold(prefix, compact=True))


def test_a_serving_job_ends_once_a_link_cannot_be_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "large.db"
    run, _ = _large_log(db, 60)
    monkeypatch.setattr(job_module, "_store", lambda store, run_id, links: links.link() and False)
    requests = _Requests(5, lambda i: None)
    assert job_module.serve(str(db), run, 1, requests) == 1  # type: ignore[arg-type]
    assert requests.read == 1 and _snapshots(db) == []


def _wait(cond: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_a_run_keeps_one_job_and_replaces_one_that_ended(tmp_path: Path) -> None:
    db = tmp_path / "large.db"
    run, evs = _large_log(db, 600, upto=100)
    checkpoints = Checkpoints(str(db), run, events=0, every=1)
    try:
        checkpoints.committed(evs)
        job = checkpoints.job
        assert job is not None and checkpoints.started == 1
        assert _wait(lambda: _snapshots(db)[-1:] == [evs[-1].seq])
        more = _more(db, 600, 100)
        checkpoints.committed(more[len(evs) :])  # the same job, asked again
        assert checkpoints.job is job and checkpoints.started == 1
        assert _wait(lambda: _snapshots(db)[-1:] == [more[-1].seq])
        assert job.poll() is None
        job.send_signal(signal.SIGKILL)
        job.wait()
        checkpoints.committed(more[-1:] * 10_000)  # grown enough again: a new job
        assert checkpoints.started == 2 and checkpoints.job is not job
    finally:
        checkpoints.stop()
    assert checkpoints.job is None
