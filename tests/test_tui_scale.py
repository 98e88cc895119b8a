"""The TUI on a large log: 100,000 events and 20,000 artifacts.

It must fold incrementally and update tables by diff: new events add a row
each, the log tail stays capped, and no table is ever rebuilt (a widget
rebuilt per event would show up as rebuilds, or as row operations in
proportion to the table instead of to the new events).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from flock_es.tui import MonitorApp
from flock_es.tui.monitor import LOG_CAP
from flock_es.tui.rows import LOG_COLUMNS
from flock_es.tui.widgets import DiffTable, TableStats
from tests.tui_logs import LARGE_RUN, T0, unit_events, write_events, write_large_log

UNITS = 10_000  # x 10 events, x 2 artifacts


@pytest.fixture(scope="session")
def large_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("tui-large") / "large.db"
    write_large_log(db, UNITS)
    return db


@pytest.fixture
def large_db(large_db_template: Path, tmp_path: Path) -> Path:
    """A private copy, since tests append to it."""
    db = tmp_path / "large.db"
    src = sqlite3.connect(large_db_template)
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    return db


async def caught_up(pilot: Any, app: MonitorApp, seq: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while app.monitor.cursor < seq and time.monotonic() < deadline:
        await pilot.pause(0.05)
    await pilot.pause()
    assert app.monitor.cursor >= seq


def stats(app: MonitorApp) -> dict[str, TableStats]:
    return {v: dataclasses.replace(app.table(v).stats) for v in ("agents", "artifacts", "log")}


def delta(before: TableStats, after: TableStats) -> TableStats:
    return TableStats(
        after.adds - before.adds,
        after.updates - before.updates,
        after.removes - before.removes,
        after.rebuilds - before.rebuilds,
    )


@pytest.mark.slow
async def test_new_events_on_a_large_log_touch_only_their_rows(large_db: Path) -> None:
    total = UNITS * 10 + 1
    app = MonitorApp(large_db, clock=lambda: T0 + 7200, poll_seconds=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await caught_up(pilot, app, total)
        arts = app.table("artifacts")
        assert arts.row_count == 2 * UNITS
        assert app.table("log").row_count == LOG_CAP
        assert app.table("agents").row_count == 10
        widgets = {v: id(app.table(v)) for v in ("agents", "artifacts", "log")}
        before = stats(app)
        assert all(s.rebuilds == 0 for s in before.values())

        more = unit_events(LARGE_RUN, range(UNITS, UNITS + 50))  # 500 events, 100 artifacts
        chunks = [more[i : i + 100] for i in range(0, len(more), 100)]
        await asyncio.to_thread(asyncio.run, write_events(large_db, chunks))
        await caught_up(pilot, app, total + len(more))

        after = stats(app)
        d = {v: delta(before[v], after[v]) for v in after}
        assert d["artifacts"] == TableStats(adds=100)
        # capped: each new line overwrites the cells of the oldest line's row
        assert d["log"].adds == d["log"].removes == d["log"].rebuilds == 0
        assert 0 < d["log"].updates <= len(LOG_COLUMNS) * len(more)
        assert d["agents"].rebuilds == 0 and d["agents"].adds == 0
        # at most the changed cells of ten agents per poll, never the whole table
        assert d["agents"].updates <= 10 * 8 * 5
        assert arts.row_count == 2 * UNITS + 100
        assert app.table("log").row_count == LOG_CAP
        assert {v: id(app.table(v)) for v in widgets} == widgets  # same widgets, not rebuilt

        # Two steps back (past a task.completed, then its output) remove one row;
        # they do not rebuild 20,000.
        await pilot.press("left_square_bracket", "left_square_bracket")
        await pilot.pause()
        back = delta(after["artifacts"], app.table("artifacts").stats)
        assert back.rebuilds == 0 and back.removes == 1
        assert isinstance(app.table("artifacts"), DiffTable)
