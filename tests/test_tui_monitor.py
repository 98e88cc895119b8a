"""The monitor's model without widgets: the same fold, time travel, following."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from flock_es.domain.events import Event
from flock_es.log.reader import LogReader
from flock_es.projection.fold import fold
from flock_es.projection.state import RunState
from flock_es.runtime.program import load_program
from flock_es.tui import monitor as monitor_module
from flock_es.tui import rows
from flock_es.tui.monitor import Monitor
from flock_es.tui.on_disk import ON_DISK, payload_of, shed
from flock_es.tui.server import ViewRequest, ViewServer
from tests.conftest import EXAMPLES
from tests.tui_logs import NEWS_RUN, news_events, write_news_log


def comparable(state: object) -> dict[str, object]:
    return dataclasses.asdict(state)  # type: ignore[call-overload, no-any-return]


def screen_fold(events: list[Event]) -> RunState:
    """What the screen holds of ``events``: the runtime's fold, less what the log keeps."""
    state = fold(events)
    for e in events:
        shed(state, e)
    return state


async def run_news(db: Path) -> str:
    program = load_program(EXAMPLES / "news.py")
    flock = program.flock
    flock.db_path = db
    await program.main()  # type: ignore[misc]
    await flock.close()
    return flock.run_id


def test_monitor_folds_a_real_run_like_everyone_else(tmp_path: Path) -> None:
    db = tmp_path / "real.db"
    run_id = asyncio.run(run_news(db))
    with LogReader(db) as log:
        monitor = Monitor(log, chunk=7)  # small chunks: the incremental path
        assert monitor.run_id == run_id
        polls = 0
        while monitor.poll():
            polls += 1
        assert polls > 5
        expected = screen_fold(log.events(run_id))
        assert comparable(monitor.live) == comparable(expected)
        # No payload or answer stays in the screen's state; each is read back from the log.
        full = fold(log.events(run_id))
        for aid, view in monitor.live.artifacts.items():
            assert view.payload is ON_DISK
            assert payload_of(view, log) == full.artifacts[aid].payload != {}
        assert {c.response for c in monitor.live.calls.values()} <= {""}
        assert monitor.live.artifact_counts() == {
            "BreakingNews": 1,
            "NewsAnalysis": 8,
            "NewsDigest": 1,
        }
        for seq in (monitor.seqs[0], monitor.seqs[len(monitor.seqs) // 2], monitor.seqs[-2]):
            monitor.travel(seq)
            want = screen_fold(log.events(run_id, until=seq))
            assert comparable(monitor.state) == comparable(want)
            last = monitor.log_lines(log, monitor.ordinal - 1, 1)
            assert [line.seq for line in last] == [seq]
        monitor.travel(None)
        assert monitor.state is monitor.live
        assert not monitor.past.tasks and not monitor.past_index.seqs  # its memory is let go


def test_stepping_forward_and_back_matches_a_fresh_fold(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    write_news_log(db)
    with LogReader(db) as log:
        m = Monitor(log, NEWS_RUN)
        m.catch_up()
        m.travel(10)
        for n in (1, 5, 17, -3, -20, 40):
            m.step(n)
            want = screen_fold(log.events(NEWS_RUN, until=m.position))
            assert comparable(m.state) == comparable(want)
        m.seek_fraction(0.0)
        assert m.position == 1
        m.seek_fraction(1.0)
        assert m.position == len(news_events())
        m.seek_ordinal(7)  # `g 7` and the scrub bar's "event 7/N" are the same number
        assert m.ordinal == 7


def test_event_log_is_every_event_read_on_demand(tmp_path: Path) -> None:
    """No cap: any window of the run's events, up to the position on screen."""
    db = tmp_path / "news.db"
    write_news_log(db)
    with LogReader(db) as log:
        m = Monitor(log)
        m.catch_up()
        assert [line.seq for line in m.log_lines(log, 45, 10)] == list(range(46, 56))
        assert len(m.log_lines(log, 0, 1000)) == len(news_events())
        m.travel(30)
        assert m.ordinal == 30
        assert [line.seq for line in m.log_lines(log, 20, 100)] == list(range(21, 31))


def test_index_orders_tasks_and_aggregates_agents(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    write_news_log(db)
    with LogReader(db) as log:
        m = Monitor(log)
        m.catch_up()
        index = m.index
        assert len(index.tasks) == 9 and index.tasks[-1] == "t-editor-digest-000"
        assert not index.in_flight and not index.failed
        assert index.consumers["a-breaking-news-0001"] == index.tasks[:8]
        assert index.percentile("world_analyst", 0.5) == pytest.approx(2.97, abs=1e-3)
        assert m.run_status() == "completed"


def test_empty_database_waits_for_a_run(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    write_news_log(db, upto=0)
    with LogReader(db) as log:
        m = Monitor(log)
        assert m.run_id is None
        assert m.poll() == []
        write_news_log(db, upto=5)
        assert len(m.poll()) == 5
        assert m.run_id == NEWS_RUN


def test_filter_syntax() -> None:
    f = rows.Filter.parse("agent:editor digest")
    assert f.matches(agent="editor", text="NewsDigest a-1")
    assert not f.matches(agent="world_analyst", text="NewsDigest")
    assert not f.matches(agent="editor", text="NewsAnalysis")
    assert rows.Filter.parse("type:news").matches(type="NewsAnalysis")
    assert not rows.Filter.parse("")
    assert rows.Filter.parse("status:fail").matches(status="failed")
    assert not rows.Filter.parse("status:fail").matches(status="completed")
    assert rows.fmt_seconds(0.25) == "250ms"
    assert rows.fmt_seconds(75) == "1m15s"
    assert rows.bar(5, 8, 8) == "█████░░░"


def test_travelling_back_says_how_far_its_fold_has_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Going back folds the run again from its start (30 s on a run of 800,000 tasks):
    between slices the frame says how far, and the scrub bar shows it."""
    db = tmp_path / "news.db"
    write_news_log(db)
    monkeypatch.setattr(monitor_module, "SLICE", 5)
    with LogReader(db) as log:
        server = ViewServer(Monitor(log), log)
        server.m.catch_up()
        seen: list[tuple[int, int] | None] = []
        server.command("travel", (40,), lambda: seen.append(server.frame(ViewRequest()).rebuilding))
        assert seen[0] == (0, 40) and len(seen) == 8  # every 5 events of 40
        assert [s[0] for s in seen if s] == list(range(0, 40, 5))
        assert server.m.rebuilding is None and server.frame(ViewRequest()).rebuilding is None
        assert server.m.at == 40
