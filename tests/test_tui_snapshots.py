"""SVG snapshots of every view (pytest-textual-snapshot).

The log is the fixed news run of ``tests/tui_logs.py`` (fixed ids and
timestamps) and the clock is frozen, so elapsed times are the same on every
machine. Update after an intended change with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from flock_es.tui import MonitorApp
from tests.test_tui_app import five_of_eight_seq
from tests.tui_logs import NEWS_RUN, T0, write_news_log

SIZE = (120, 34)


@pytest.fixture
def news_db(tmp_path: Path) -> Path:
    db = tmp_path / "news.db"
    write_news_log(db)
    return db


def make_app(db: Path, at: int | None = None) -> MonitorApp:
    return MonitorApp(db, NEWS_RUN, at=at, clock=lambda: T0 + 100.0, blink=False)


async def settled(pilot: Pilot[Any]) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


@pytest.mark.parametrize("key", ["1", "2", "4", "6", "7"])
def test_view_after_the_run(news_db: Path, snap_compare: Any, key: str) -> None:
    assert snap_compare(make_app(news_db), press=[key], terminal_size=SIZE, run_before=settled)


@pytest.mark.parametrize("key", ["2", "3", "5", "7"])
def test_view_when_the_batch_held_five(news_db: Path, snap_compare: Any, key: str) -> None:
    app = make_app(news_db, at=five_of_eight_seq())
    assert snap_compare(app, press=[key], terminal_size=SIZE, run_before=settled)


def test_artifact_payload(news_db: Path, snap_compare: Any) -> None:
    keys = ["4", *["down"] * 9]
    assert snap_compare(make_app(news_db), press=keys, terminal_size=SIZE, run_before=settled)


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
