"""A filter never holds the screen: each frame scans it for a slice, the fold's loop
scans on between questions, and the lists fill to what a whole scan finds.

The slices are made as small as they go (one key or event each, no time) so the
news log takes many of them, as a run of 160,000 tasks does at the real sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flock_es.log.reader import LogReader
from flock_es.tui import MonitorApp, server, sources
from flock_es.tui.monitor import Monitor
from flock_es.tui.rows import Filter
from flock_es.tui.server import LISTS, ViewRequest, ViewServer
from flock_es.tui.sources import ArtifactSource, FailureSource, LogSource, TaskSource
from tests.test_tui_app import SIZE, frozen, keys_of, settle
from tests.tui_logs import news_events, write_news_log

REQ = ViewRequest(flt=Filter.parse("world"), task_mode="all")


@pytest.fixture
def news_db(tmp_path: Path) -> Path:
    db = tmp_path / "news.db"
    write_news_log(db)
    return db


def _whole(db: Path, req: ViewRequest = REQ) -> tuple[dict[str, int], dict[str, Any]]:
    """The lists' counts and rows as a scan in one go finds them (the news log is small)."""
    with LogReader(db) as log:
        s = ViewServer(Monitor(log), log)
        s.m.catch_up()
        frame = s.frame(req)
        assert not frame.filtering
        return frame.lists, {name: s.rows(name, req, 0, 1000) for name in LISTS}


def _slices_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "SCAN_SECONDS", 0.0)
    monkeypatch.setattr(server, "SCAN_SECONDS", 0.0)
    monkeypatch.setattr(server, "SCAN_ROUND", 0.0)
    for cls in (TaskSource, ArtifactSource, FailureSource, LogSource):
        monkeypatch.setattr(cls, "PART", 1)


def test_a_frame_scans_a_slice_and_scan_goes_on_to_the_whole(
    news_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want, want_rows = _whole(news_db)
    assert want["tasks"] and want["artifacts"] and want["log"]
    _slices_of_one(monkeypatch)
    with LogReader(news_db) as log:
        s = ViewServer(Monitor(log), log)
        s.m.catch_up()
        first = s.frame(REQ)
        assert first.filtering and first.lists != want
        seen = [first.lists]
        while s.scan():
            seen.append(s.frame(REQ).lists)
        assert len(seen) > 20  # one key or event a round
        for name in LISTS:  # the lists only grow, to what the whole scan found
            assert [c[name] for c in seen] == sorted(c[name] for c in seen)
        last = s.frame(REQ)
        assert not last.filtering and last.lists == want
        assert {name: s.rows(name, REQ, 0, 1000) for name in LISTS} == want_rows
        assert not s.scan()  # nothing left: the fold's loop may sleep
        s.frame(ViewRequest())
        assert not s.scan()  # no filter on screen any more


def test_the_filtered_log_grows_with_the_run(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    req = ViewRequest(flt=Filter.parse("kind:task."))
    write_news_log(db, upto=20)
    with LogReader(db) as log:
        s = ViewServer(Monitor(log), log)
        s.m.catch_up()
        early = s.frame(req).lists["log"]
        write_news_log(db, upto=len(news_events()))
        s.m.catch_up()
        assert early < s.frame(req).lists["log"] == _whole(db, req)[0]["log"]


async def test_the_app_fills_a_filtered_list_in_the_background(
    news_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want, want_rows = _whole(news_db, ViewRequest(flt=REQ.flt))  # tasks in flight, as shown
    _slices_of_one(monkeypatch)
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("4", "slash", *"world", "enter")
        await settle(pilot, app)  # settled: no scan is left
        assert not app.frame.filtering and app.frame.lists == want
        assert keys_of(app.vlist("artifacts")) == [k for k, _ in want_rows["artifacts"]]
        assert "searching" not in str(app.query_one("#status").render())
