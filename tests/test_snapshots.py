"""Snapshots of the folded state: snapshot + tail == the full fold, and a missing,
stale or damaged snapshot falls back to folding the log (SQLite; PostgreSQL when
$FLOCK_ES_TEST_PG is set)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flock_es.log.snapshots as snapshots_module
from flock_es.domain.events import Event
from flock_es.log.ports import EventStore, open_store
from flock_es.log.schema import DB_SCHEMA_VERSION
from flock_es.log.snapshots import fold_run, save_snapshot
from flock_es.projection import fold
from flock_es.projection.fold import compacted
from flock_es.projection.snapshot import decode, encode
from flock_es.runtime.checkpoints import GROWTH, Checkpoints
from flock_es.runtime.lifecycle import plan_resume
from flock_es.runtime.resume import load_run
from tests.conftest import EXAMPLES, run_cli
from tests.pg import pg_database
from tests.property_budget import examples
from tests.test_fold_properties import any_valid_events, event_lists


@settings(max_examples=examples(150), deadline=None)
@given(st.one_of(event_lists(), any_valid_events()), st.integers(0, 40))
def test_a_decoded_snapshot_plus_the_tail_equals_the_full_fold(evs: list[Event], cut: int) -> None:
    cut = min(cut, len(evs))
    data = encode(fold(evs[:cut]))
    snap = decode(data)
    assert snap is not None
    assert fold(evs[cut:], snap) == fold(evs)
    # Resume's decode builds only the compact part: the compacted state, exactly.
    assert decode(data, compact=True) == compacted(fold(evs[:cut]))


def test_bytes_that_are_not_a_current_snapshot_decode_to_none() -> None:
    good = encode(fold([]))
    assert decode(good) == fold([])
    for bad in (b"", b"junk", good[:-4], good[:8] + bytes(16) + good[24:], None):
        assert decode(bad) is None
    # A pickle naming any class outside the state is refused, never loaded.
    import pickle
    import zlib

    evil = good[:24] + zlib.compress(pickle.dumps(Path("x")))
    assert decode(evil) is None


@pytest.fixture(params=["sqlite", "postgres"])
def news_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(database, run id) of a finished news.py run on each backend."""
    if request.param == "sqlite":
        db = str(tmp_path / "news.db")
        yield db, _run_news(db, tmp_path)
        return
    from tests.pg import pg_admin_url

    with pg_database(pg_admin_url()) as url:
        yield url, _run_news(url, tmp_path)


def _run_news(db: str, cwd: Path) -> str:
    out = run_cli(["run", EXAMPLES / "news.py", "--db", db, "-q"], cwd=cwd)
    assert out.returncode == 0, out.stderr
    with open_store(db).reader() as log:
        return log.runs()[-1].run_id


def _events(store: EventStore, run: str) -> list[Event]:
    with store.reader() as log:
        return log.events(run)


def test_show_at_and_resume_start_from_the_latest_snapshot_before_them(
    news_run: tuple[str, str],
) -> None:
    db, run = news_run
    store = open_store(db)
    events = _events(store, run)
    mid = events[len(events) // 2].seq
    assert mid is not None
    store.save_snapshot(run, mid, encode(fold(e for e in events if e.seq and e.seq <= mid)))
    with store.reader() as log:
        for e in events:
            assert e.seq is not None
            state, folded = fold_run(log, run, e.seq)
            assert state == fold(x for x in events if x.seq and x.seq <= e.seq)
            before = [x for x in events if x.seq and x.seq <= e.seq]
            # From the snapshot when it lies at or before the target, else from event 0.
            assert folded == (len(before) - (len(events) // 2 + 1) if e.seq >= mid else len(before))
            assert load_run(log, run, e.seq) == state


def test_a_damaged_stale_or_foreign_snapshot_is_ignored(news_run: tuple[str, str]) -> None:
    db, run = news_run
    store = open_store(db)
    events = _events(store, run)
    whole = fold(events)
    last = events[-1].seq
    assert last is not None
    prefix = fold(events[:-1])
    wrong = fold(events[:-2])  # claims a seq it was not taken at
    other = fold(events)
    other.run_id = "r-another"
    for data in (b"not a snapshot", encode(prefix)[:-10], encode(wrong), encode(other)):
        store.save_snapshot(run, last - 1, data)
        with store.reader() as log:
            state, folded = fold_run(log, run)
        assert state == whole and folded == len(events)


def test_resume_writes_a_snapshot_that_the_next_fold_starts_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "news.db")
    run = _run_news(db, tmp_path)
    events = _events(open_store(db), run)
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_EVERY", 10)
    plan = plan_resume(db, run)  # a finished run: nothing to do, but the fold is saved
    assert plan.nothing_to_do
    with open_store(db).reader() as log:
        stored = log.snapshot(run)
        assert stored is not None and stored[0] == events[-1].seq
        state, folded = fold_run(log, run)
    assert folded == 0 and state == fold(events)
    # Below the threshold nothing is written.
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_EVERY", 10**9)
    assert not save_snapshot(open_store(db), state, folded=len(events))


def test_a_file_without_the_snapshots_table_still_opens_and_gets_it_on_upgrade(
    tmp_path: Path,
) -> None:
    db = tmp_path / "news.db"
    run = _run_news(str(db), tmp_path)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE snapshots")
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    store = open_store(db)
    with store.reader() as log:
        assert log.snapshot(run) is None
        state, folded = fold_run(log, run)
    assert state == fold(_events(store, run)) and folded == state.events
    show = run_cli(["show", run, "--db", db, "--at", "5", "--json"])
    assert show.returncode == 0, show.stderr
    store.save_snapshot(run, state.last_seq, encode(state))  # a write upgrades the file
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == DB_SCHEMA_VERSION
    con.close()
    with store.reader() as log:
        assert fold_run(log, run) == (state, 0)


def _stored(store: EventStore, run: str, timeout: float = 60.0) -> tuple[int, bytes] | None:
    """The run's snapshot, once its job stored one (None if none within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        with store.reader() as log:
            found: tuple[int, bytes] | None = log.snapshot(run)
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_live_run_checkpoints_in_another_process(news_run: tuple[str, str]) -> None:
    """The checkpoint job stores the fold of the committed prefix (on each backend)."""
    db, run = news_run
    store = open_store(db)
    events = _events(store, run)
    half = len(events) // 2
    checkpoints = Checkpoints(db, run, events=0, every=half)
    checkpoints.committed(events[: half - 1])  # not yet
    assert checkpoints.job is None
    checkpoints.committed(events[half - 1 :])  # the run has grown enough
    job = checkpoints.job
    assert job is not None
    found = _stored(store, run)
    assert found is not None and found[0] == events[-1].seq
    assert decode(found[1]) == fold(events)
    assert checkpoints.next_at >= int(len(events) * GROWTH)
    assert job.poll() is None  # kept for the run's next checkpoints
    checkpoints.stop()  # the run closes: so does its job
    assert job.returncode is not None and checkpoints.job is None
    # The database (a URL may hold a password) is handed over in the environment:
    # a process's command line is readable by every user of the machine.
    assert not any(str(db) in str(arg) for arg in job.args)


@pytest.mark.slow  # 8,000 runs folded twice: a scale test
def test_a_large_state_round_trips_through_the_streamed_codec() -> None:
    # Many compressed pieces and pickle frames: encode and decode stream both ways.
    from tests.test_compact_state import _finished_runs

    state = fold(_finished_runs(8000))
    data = encode(state)
    assert len(data) > 1 << 16
    assert decode(data) == state
    assert decode(memoryview(data)) == state
    assert decode(data[:-100]) is None  # cut short: not a snapshot
    # The compact part alone, with the rest checked but never built.
    compact = decode(data, compact=True)
    assert compact == compacted(fold(_finished_runs(8000))) and compact is not None
    assert not compact.tasks and compact.finished == 8000
    assert decode(data[:-100], compact=True) is None
    damaged = bytearray(data)
    damaged[-20] ^= 0xFF  # in the part a compact decode does not build: still refused
    assert decode(bytes(damaged), compact=True) is None
