"""The TUI on a fan-out log: 8 agents x N items, thousands of tasks in flight.

The screen must show aggregates and windows: per-agent lanes, a virtual list
of tasks, no widget row per task. Following a run never rebuilds a table;
keys are answered while the backlog still folds; failures are one key away.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from flock_es.log.reader import LogReader
from flock_es.tui import MonitorApp
from flock_es.tui.monitor import Monitor
from flock_es.tui.screens import DetailScreen
from flock_es.tui.server import ViewRequest, ViewServer
from flock_es.tui.widgets import TableStats
from tests.tui_fanout import (
    AGENTS,
    FAIL_EVERY,
    FANOUT_RUN,
    T0,
    _write,
    run_task,
    write_fanout_log,
)

N = 1_250  # items: 10,000 tasks, about 41,000 events
IN_FLIGHT = 2_000


async def settled(pilot: Any, app: MonitorApp, timeout: float = 90) -> None:
    # Settled must hold for a run that was found, twice across a poll: before the
    # monitor finds the run (run_id None) or between two polls of a log still being
    # written, `settled` is briefly true with work still to come.
    deadline = time.monotonic() + timeout
    await pilot.pause()
    while time.monotonic() < deadline:
        if app.settled and app.frame.run_id is not None:
            await pilot.pause(0.2)
            if app.settled:
                break
        await pilot.pause(0.05)
    await pilot.pause()
    assert app.settled


@pytest.mark.slow
async def test_live_fanout_shows_lanes_and_follows_without_rebuilds(tmp_path: Path) -> None:
    db = tmp_path / "fanout.db"
    await asyncio.to_thread(write_fanout_log, db, N, live=True, in_flight=IN_FLIGHT)
    app = MonitorApp(db, clock=lambda: T0 + 120, poll_seconds=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")  # keys are answered while the log still folds
        assert app.view == "tasks"
        await pilot.press("2")
        await settled(pilot, app)
        lanes = app.table("agents")
        assert list(lanes.rows_by_key) == list(AGENTS)  # one lane per agent, not per task
        running = sum(int(row[3]) for row in lanes.rows_by_key.values())
        waiting = sum(int(row[2]) for row in lanes.rows_by_key.values())
        assert (running, waiting) == (IN_FLIGHT // 2, IN_FLIGHT // 2)
        assert app.vlist("tasks").row_count == IN_FLIGHT  # a virtual list, drawn by window
        before = dataclasses.replace(lanes.stats)

        # Finish 200 of the running tasks: the lanes update in place.
        first = N * len(AGENTS) - IN_FLIGHT
        units = []
        for j in range(first, first + 200):
            k, i = divmod(j, len(AGENTS))
            units.append(run_task(k, i, T0 + 100, FANOUT_RUN)[1:])
        await asyncio.to_thread(asyncio.run, _write(db, iter(units), batch=100))
        await settled(pilot, app)
        after = lanes.stats
        assert after.rebuilds == before.rebuilds and after.adds == before.adds
        assert app.vlist("tasks").row_count == IN_FLIGHT - 200
        assert isinstance(after, TableStats)


@pytest.mark.slow
async def test_failures_view_opens_a_failed_task_with_its_traceback(tmp_path: Path) -> None:
    db = tmp_path / "fanout.db"
    await asyncio.to_thread(write_fanout_log, db, 200, fail_every=97)
    app = MonitorApp(db, clock=lambda: T0 + 120)
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, app)
        assert app.monitor is not None and app.monitor.run_status() == "completed"
        lanes = app.table("agents").rows_by_key
        assert any("failed" in row[1] for row in lanes.values())  # "✗ 2 failed", not "idle"
        await pilot.press("8")
        failures = app.vlist("failures")
        assert failures.row_count == 200 * 8 // 97
        await pilot.press("home", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.data["status"] == "failed"
        assert app.screen.data["error"] == "cannot analyse item"
        text = str(app.screen.query_one("#detail-scroll").query("Static").first().render())
        assert text  # rendered


@pytest.mark.slow
async def test_big_completed_log_folds_in_a_child_process_and_lanes_count_right(
    tmp_path: Path,
) -> None:
    """20,000 tasks (about 82,000 events): the app's own process folds none of them."""
    items = 2_500
    db = tmp_path / "fanout.db"
    await asyncio.to_thread(write_fanout_log, db, items)
    app = MonitorApp(db)  # no frozen clock: the fold runs in a child process
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3", "2")  # keys are answered while the child folds
        await settled(pilot, app, timeout=240)
        assert app.fold_in == "process" and app.monitor is None
        assert app.frame.status == "completed" and app.frame.caught_up
        lanes = app.table("agents").rows_by_key
        assert list(lanes) == list(AGENTS)
        for i, agent in enumerate(AGENTS):
            failed = sum(1 for n in range(items) if (n * 8 + i) % FAIL_EVERY == FAIL_EVERY - 1)
            row = lanes[agent]
            assert row[2:4] == ("0", "0")  # nothing waiting or running
            assert row[4] == str(items - failed)
            assert row[5] == (f"{failed} failed" if failed else "0")
            assert row[6] and row[7]  # p50 and p95 of the finished tasks
        assert app.frame.counts["completed"] + app.frame.counts["failed"] == items * 8
        await pilot.press("8")
        assert app.vlist("failures").row_count == app.frame.counts["failed"]
        # A filter: the child answers with what a slice of its scan found, scans on
        # between questions, and the lists fill to what a whole scan finds.
        app.set_filter(f"agent:{AGENTS[3]}")
        await settled(pilot, app, timeout=240)
        assert not app.frame.filtering
        with LogReader(db) as log:
            whole = ViewServer(Monitor(log), log)
            whole.m.catch_up()
            req = ViewRequest(flt=app.filter, task_mode=app.task_mode)
            whole.frame(req)
            while whole.scan():
                pass
            want = whole.frame(req).lists
        failed = sum(1 for n in range(items) if (n * 8 + 3) % FAIL_EVERY == FAIL_EVERY - 1)
        assert app.frame.lists == want and want["artifacts"] == items - failed < want["log"]


async def test_a_long_list_draws_its_own_scrollbar_in_one_frame(tmp_path: Path) -> None:
    """A list's scrollbar is part of its lines (no scrollbar widget to restyle and
    repaint a frame later when the view is shown again); a click on it scrolls."""
    db = tmp_path / "fanout.db"
    await asyncio.to_thread(write_fanout_log, db, 20)
    app = MonitorApp(db, clock=lambda: T0 + 120)
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, app)
        await pilot.press("6", "home")
        log = app.vlist("log")
        assert log.row_count > log.size.height and log.has_bar
        assert not log.show_vertical_scrollbar  # Textual's scrollbar widget is not used
        assert log.allow_vertical_scroll  # so the mouse wheel is allowed explicitly
        assert log.content_width == log.size.width - 2
        assert log.render_line(1).cell_length == log.size.width
        assert (log.cursor, log.scroll_y) == (0, 0)
        await pilot.click(log, offset=(log.size.width - 1, log.size.height - 1))
        assert log.scroll_y == log.max_scroll_y > 0
        assert log.cursor == 0  # a click on the bar scrolls; it selects no row
