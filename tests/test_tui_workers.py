"""The monitor shows the models' rate limiters and the worker of each task.

A real SQLite log written through the ``LogWriter``: the news run as a
``flock-es worker`` pool on a rate-limited provider would record it, with a
``limiter`` snapshot on each ``model.called`` and a ``worker`` on each
``task.started`` (bodies validated against their kinds by ``make_event``).
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console
from textual.widgets import Static

from flock_es.domain.events import Body, Event, EventKind, make_event
from flock_es.tui import MonitorApp
from flock_es.tui.screens import DetailScreen
from tests.test_tui_app import SIZE, cells, frozen, settle
from tests.tui_logs import news_events, write_events

KEY = "openai/gpt-4o @ http://127.0.0.1:41651/v1"
WORKERS = ("host-a:101:0", "host-a:101:1", "host-b:202:0")


def _scaled_out() -> list[Event]:
    """The news run with workers on task.started and limiter state on model.called."""
    out: list[Event] = []
    started = called = 0
    for e in news_events():
        body: dict[str, Any] = dict(e.body)
        if e.kind is EventKind.TASK_STARTED:
            body["worker"] = WORKERS[started % len(WORKERS)]
            started += 1
        elif e.kind is EventKind.MODEL_CALLED and body["agent"] != "editor":
            called += 1  # the provider said 429 twice by the last analyst's call
            last = called == 8
            body["limiter"] = {
                "key": KEY,
                "in_flight": 9 - called,
                "limit": 8,
                "queued": 3 if last else 0,
                "paused_for": 0.0,
                "rate_limited": 2 if last else 0,
            }
        out.append(make_event(e.run_id, e.kind, cast(Body, body), e.ts))
    return out


@pytest.fixture
def scaled_db(tmp_path: Path) -> Path:
    db = tmp_path / "scaled.db"
    asyncio.run(write_events(db, [[e] for e in _scaled_out()]))
    return db


def _text(app: MonitorApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


def _detail_text(screen: DetailScreen) -> str:
    console = Console(width=200, record=True, no_color=True, file=io.StringIO())
    for part in screen.detail.body:
        console.print(part)
    return console.export_text()


async def test_limiter_state_is_shown_and_marked_when_rate_limited(scaled_db: Path) -> None:
    app = MonitorApp(scaled_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        limits = app.query_one("#limits", Static)
        assert limits.display
        # The markup's words, so NO_COLOR shows the 429s too: "⚠ rate limited".
        assert _text(app, "#limits") == (
            f" models: [b yellow]{KEY}: 1 in flight, limit 8, 3 queued, ⚠ rate limited (2× 429)[/]"
        )
        kinds = [e.kind for e in _scaled_out()]
        first_call = kinds.index(EventKind.MODEL_CALLED) + 1  # seqs count from 1
        app.command("travel", first_call)  # the first analyst's answer
        await settle(pilot, app)
        assert _text(app, "#limits") == f" models: {KEY}: 8 in flight, limit 8"
        app.command("travel", first_call - 1)  # before any model call
        await settle(pilot, app)
        assert not limits.display


async def test_offline_run_shows_no_limiter_and_no_worker_column(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    await write_events(db, [[e] for e in news_events()])
    app = MonitorApp(db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert not app.query_one("#limits", Static).display
        await pilot.press("3", "m")
        await settle(pilot, app)
        assert "worker" not in app.vlist("tasks").source.columns
        assert len(cells(app.vlist("tasks"), "t-world-analyst-000")) == 6


async def test_worker_column_and_task_detail(scaled_db: Path) -> None:
    app = MonitorApp(scaled_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("3", "m")  # all tasks
        await settle(pilot, app)
        tasks = app.vlist("tasks")
        assert tasks.source.columns[-1] == "worker"
        assert cells(tasks, "t-world-analyst-000")[-1] == "host-a:101:0"
        assert cells(tasks, "t-techno-analyst-000")[-1] == "host-a:101:1"
        assert cells(tasks, "t-editor-digest-000")[-1] == WORKERS[8 % 3]
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.data["worker"] == "host-a:101:0"
        text = _detail_text(app.screen)
        assert "· worker host-a:101:0" in text
        assert "started 2025-01-01T12:00:00.030" in text and "on worker host-a:101:0" in text
