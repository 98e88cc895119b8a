"""SVG snapshots of every view (pytest-textual-snapshot).

The logs are fixed (ids and timestamps of ``tests/tui_logs.py`` and
``tests/tui_fanout.py``) and the clock is frozen, so elapsed and relative
times are the same on every machine. Update after an intended change with
``pytest --snapshot-update``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from flock_es.tui import MonitorApp
from tests.test_tui_app import five_of_eight_seq
from tests.tui_fanout import FANOUT_RUN, write_fanout_log
from tests.tui_fanout import T0 as FAN_T0
from tests.tui_logs import NEWS_RUN, T0, write_news_log

SIZE = (120, 34)


@pytest.fixture
def news_db(tmp_path: Path) -> Path:
    db = tmp_path / "news.db"
    write_news_log(db)
    return db


def make_app(db: Path, at: int | None = None, run: str = NEWS_RUN, t0: float = T0) -> MonitorApp:
    return MonitorApp(db, run, at=at, clock=lambda: t0 + 100.0, blink=False)


async def settled(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, MonitorApp)
    deadline = time.monotonic() + 30
    await pilot.pause()
    while not app.settled and time.monotonic() < deadline:
        await pilot.pause(0.02)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def slow_but(*quick: str, keys: tuple[str, ...]) -> list[Any]:
    """``keys`` as parameters, those not in ``quick`` marked slow (one snapshot costs a
    second of CPU; the quick set draws a few views, CI every one)."""
    return [k if k in quick else pytest.param(k, marks=pytest.mark.slow) for k in keys]


@pytest.mark.parametrize("key", slow_but("1", "2", keys=("1", "2", "4", "6", "7")))
def test_view_after_the_run(news_db: Path, snap_compare: Any, key: str) -> None:
    assert snap_compare(make_app(news_db), press=[key], terminal_size=SIZE, run_before=settled)


@pytest.mark.parametrize("key", slow_but("5", keys=("2", "3", "5", "7")))
def test_view_when_the_batch_held_five(news_db: Path, snap_compare: Any, key: str) -> None:
    app = make_app(news_db, at=five_of_eight_seq())
    assert snap_compare(app, press=[key], terminal_size=SIZE, run_before=settled)


def test_artifact_payload(news_db: Path, snap_compare: Any) -> None:
    keys = ["4", "home", *["down"] * 9]
    assert snap_compare(make_app(news_db), press=keys, terminal_size=SIZE, run_before=settled)


def test_task_detail_renders_the_prompt_as_a_chat(news_db: Path, snap_compare: Any) -> None:
    keys = ["3", "m", "home", "enter"]  # all tasks, the first: world_analyst's
    assert snap_compare(make_app(news_db), press=keys, terminal_size=(120, 50), run_before=settled)


def test_help_screen(news_db: Path, snap_compare: Any) -> None:
    assert snap_compare(
        make_app(news_db), press=["question_mark"], terminal_size=SIZE, run_before=settled
    )


def test_live_run_with_a_frozen_clock(tmp_path: Path, snap_compare: Any) -> None:
    """An unfinished run: elapsed times are measured to the injected clock."""
    db = tmp_path / "live.db"
    write_news_log(db, upto=18)
    app = MonitorApp(db, clock=lambda: T0 + 2.5, blink=False)
    assert snap_compare(app, press=["3"], terminal_size=SIZE, run_before=settled)


@pytest.fixture
def fanout_db(tmp_path: Path) -> Path:
    db = tmp_path / "fanout.db"
    write_fanout_log(db, 400, fail_every=211)  # 3,200 tasks, 15 of them failed
    return db


def test_big_run_agent_lanes(fanout_db: Path, snap_compare: Any) -> None:
    app = make_app(fanout_db, run=FANOUT_RUN, t0=FAN_T0)
    assert snap_compare(app, press=["2"], terminal_size=SIZE, run_before=settled)


def test_failures_view(fanout_db: Path, snap_compare: Any) -> None:
    app = make_app(fanout_db, run=FANOUT_RUN, t0=FAN_T0)
    assert snap_compare(app, press=["8"], terminal_size=SIZE, run_before=settled)


def test_too_small_terminal_keeps_quit_in_the_footer(news_db: Path, snap_compare: Any) -> None:
    assert snap_compare(make_app(news_db), press=[], terminal_size=(80, 24), run_before=settled)
