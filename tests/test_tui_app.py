"""Pilot tests of ``flock-es tui``: the real Textual app on a real SQLite log."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from pydantic import BaseModel
from textual.css.query import NoMatches
from textual.widgets import Static

from flock_es import Flock, JoinSpec, flock_type
from flock_es.domain.events import EventKind
from flock_es.tui import MonitorApp
from flock_es.tui.screens import DetailScreen, HelpScreen
from flock_es.tui.vlist import VirtualList
from flock_es.tui.widgets import DiffTable
from tests.conftest import CLI, EXAMPLES, cli_env
from tests.tui_logs import CATEGORIES, NEWS_RUN, T0, news_events, write_news_log

SIZE = (120, 40)


@flock_type
class TuiXRay(BaseModel):
    patient: str


@flock_type
class TuiLab(BaseModel):
    patient: str


@flock_type
class TuiDiagnosis(BaseModel):
    patients: list[str]


def frozen() -> float:
    return T0 + 100.0


async def settle(pilot, app: MonitorApp, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until the worker has folded everything and done what it was asked."""
    deadline = time.monotonic() + timeout
    await pilot.pause()
    while not app.settled and time.monotonic() < deadline:
        await pilot.pause(0.02)
    await pilot.pause()


def keys_of(table: DiffTable | VirtualList) -> list[str]:
    if isinstance(table, VirtualList):
        keys: list[str] = table.keys()
        return keys
    return [str(k.value) for k in table.rows]


def cells(vlist: VirtualList, key: str) -> tuple[str, ...]:
    for k, row in vlist.source.rows(0, vlist.row_count):
        if k == key:
            return tuple(c.plain for c in row)
    raise KeyError(key)


def five_of_eight_seq() -> int:
    """The seq at which the editor's batch held 5 of its 8 analyses."""
    buffered = [e for e in news_events() if e.kind is EventKind.BATCH_BUFFERED]
    return news_events().index(buffered[4]) + 1


@pytest.fixture
def news_db(tmp_path: Path) -> Path:
    db = tmp_path / "news.db"
    write_news_log(db)
    return db


async def test_number_keys_and_tab_switch_views(news_db: Path) -> None:
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.view == "agents"
        for key, view in zip(
            "12345678",
            ("runs", "agents", "tasks", "artifacts", "batches", "log", "timeline", "failures"),
            strict=True,
        ):
            await pilot.press(key)
            assert app.view == view
        await pilot.press("tab")
        assert app.view == "runs"
        await pilot.press("shift+tab")
        assert app.view == "failures"
        await pilot.press("escape")
        assert app.view == "agents"


async def test_agents_table_shows_the_fold(news_db: Path) -> None:
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        agents = app.table("agents")
        assert keys_of(agents)[:2] == ["world_analyst", "technology_analyst"]
        assert keys_of(agents)[-1] == "editor"
        row = agents.rows_by_key["editor"]
        assert row[:6] == ("editor", "idle", "0", "0", "1", "0")
        assert row[6] == row[7] == "3.0s"  # p50, p95 of its one task
        assert row[8] == "1800"  # tokens in + out
        assert app.vlist("tasks").row_count == 0  # nothing in flight
        assert app.vlist("log").row_count == len(news_events())


async def test_artifact_selection_shows_payload_and_drills_down(news_db: Path) -> None:
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("4")
        table = app.vlist("artifacts")
        assert keys_of(table)[-1] == "a-news-digest-000001"
        await pilot.press("home", *["down"] * 9)
        await pilot.pause()
        assert table.selected_key == "a-news-digest-000001"
        payload = app.query_one("#payload", Static).content.code
        assert "total_analysts" in payload
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.data["total_analysts"] == 8
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DetailScreen)


async def test_filter_by_agent_type_and_text(news_db: Path) -> None:
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash")
        await pilot.press(*"agent:editor", "enter")
        await pilot.pause()
        assert keys_of(app.table("agents")) == ["editor"]
        assert keys_of(app.vlist("artifacts")) == ["a-news-digest-000001"]
        log = app.vlist("log")
        assert log.row_count > 0
        assert all(row[3].plain == "editor" for _, row in log.source.rows(0, log.row_count))
        await pilot.press("escape")  # clears the filter
        await pilot.pause()
        assert app.table("agents").row_count == 9
        app.set_filter("type:newsanalysis")
        await pilot.pause()
        assert app.vlist("artifacts").row_count == 8
        app.set_filter("sports")
        await pilot.pause()
        assert keys_of(app.table("agents")) == ["sports_analyst"]


async def test_time_travel_shows_the_batch_holding_five_of_eight(news_db: Path) -> None:
    seq = five_of_eight_seq()
    app = MonitorApp(news_db, NEWS_RUN, at=seq, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)

        async def press(*keys: str) -> None:
            await pilot.press(*keys)
            await settle(pilot, app)

        assert app.monitor.position == seq
        assert app.table("batches").rows_by_key["editor[0]"][3] == "5/8"
        assert app.vlist("tasks").row_count == 3  # three analysts still running
        assert app.vlist("artifacts").row_count == 6  # the news and five analyses
        assert app.vlist("log").row_count == seq
        await press("right_square_bracket")
        assert app.monitor.position == seq + 1
        await press("left_square_bracket", "left_square_bracket")
        assert app.monitor.position == seq - 1
        assert app.vlist("artifacts").row_count == 6
        await press("less_than_sign")
        assert app.monitor.position == 1
        assert app.vlist("artifacts").row_count == 0
        assert app.table("agents").row_count == 9
        await press("right_curly_bracket")
        assert app.monitor.position == 11
        assert app.vlist("tasks").row_count == 8
        await press("f")  # follow: back to live
        assert app.monitor.at is None
        assert app.vlist("tasks").row_count == 0
        assert app.vlist("artifacts").row_count == 10


async def test_pause_freezes_and_scrub_bar_seeks(news_db: Path) -> None:
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("p")
        await settle(pilot, app)
        assert app.monitor.at == app.monitor.cursor
        await pilot.press("p")
        await settle(pilot, app)
        assert app.monitor.at is None
        app.action_seek(0.5)
        await settle(pilot, app)
        assert app.monitor.ordinal == round(0.5 * (len(news_events()) - 1)) + 1
        app.travel_to_event(7)  # `g 7`: event 7 of the scrub bar's "event N/M"
        await settle(pilot, app)
        assert app.monitor.ordinal == 7


@pytest.mark.slow
async def test_help_lists_every_binding_and_palette_switches_view(news_db: Path) -> None:
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        descriptions = {b.description for b in app.screen.bindings}
        assert {"Help", "Filter", "Follow", "Pause", "Open", "Back", "Quit"} <= descriptions
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"View: Timeline")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.view == "timeline"


@pytest.mark.slow
async def test_drill_down_task_agent_event_and_runs(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    await asyncio.to_thread(write_news_log, db, 18)  # unfinished: analysts still running
    await asyncio.to_thread(write_news_log, db, None, "r-20250101-120100-news01", T0 + 60)
    app = MonitorApp(db, clock=lambda: T0 + 2.0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.monitor.run_id == "r-20250101-120100-news01"
        await pilot.press("1")
        runs = app.table("runs")
        assert keys_of(runs) == ["r-20250101-120100-news01", NEWS_RUN]  # newest first
        runs.move_cursor(row=1)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.monitor.run_id == NEWS_RUN
        assert not app.monitor.follow_latest  # opening a run stops following
        assert "f: follow newest" in str(app.query_one("#status", Static).content)
        assert app.view == "agents"
        await pilot.press("3")
        assert app.vlist("tasks").row_count == 8
        elapsed = cells(app.vlist("tasks"), "t-techno-analyst-000")[4]
        assert elapsed == "2.0s"  # the frozen clock minus task.started
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.data["agent"] == "world_analyst"
        await pilot.press("escape", "2", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.data["agent"] == "world_analyst"
        await pilot.press("escape", "6", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.data["body"]["model"] == "offline?latency=3"


async def test_switches_to_a_new_run_when_one_starts(news_db: Path) -> None:
    app = MonitorApp(news_db, clock=frozen, poll_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.monitor.run_id == NEWS_RUN
        await asyncio.to_thread(write_news_log, news_db, None, "r-20250101-120200-news02", T0 + 120)
        deadline = time.monotonic() + 10
        while app.monitor.run_id == NEWS_RUN and time.monotonic() < deadline:
            await pilot.pause(0.05)
        # The switch can happen on a poll that saw only part of the new run's commits,
        # and the runs list refreshes on its own poll: wait for both rather than for
        # one settled moment.
        deadline = time.monotonic() + 10
        while (
            app.vlist("artifacts").row_count < 10 or app.table("runs").row_count < 2
        ) and time.monotonic() < deadline:
            await settle(pilot, app)
            await pilot.pause(0.05)
        assert app.monitor.run_id == "r-20250101-120200-news02"
        assert app.vlist("artifacts").row_count == 10
        assert app.table("runs").row_count == 2


async def test_a_redraw_message_handled_while_the_app_quits_finds_no_widget(
    news_db: Path,
) -> None:
    # Following a run, each redraw posts a list's Highlighted; one still queued when the
    # app quits is handled after its screens are gone. Its handler must then find no
    # widget (NoMatches, which the handlers ignore), not fail on an empty screen stack.
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.vlist("artifacts").row_count == 10
    assert not app.screen_stack
    with pytest.raises(NoMatches):
        app.vlist("artifacts")


async def test_too_small_terminal_shows_a_message_not_a_crash(news_db: Path) -> None:
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot, app)
        msg = app.query_one("#too-small")
        assert msg.display
        assert "terminal too small: 60x20" in str(msg.content)
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert not msg.display
        assert app.query_one("#main").display


@pytest.mark.slow
async def test_follows_a_live_run_in_another_process(news_db: Path, tmp_path: Path) -> None:
    """`flock-es run` writes from a subprocess; the TUI switches to it and sees it progress."""
    app = MonitorApp(news_db, poll_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        proc = subprocess.Popen(
            [
                *CLI,
                "run",
                str(EXAMPLES / "news.py"),
                "-m",
                "offline?latency=0.3",
                "--db",
                str(news_db),
                "-q",
            ],
            cwd=tmp_path,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            most_in_flight = 0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                await pilot.pause(0.02)
                if app.frame.run_id != NEWS_RUN:
                    most_in_flight = max(most_in_flight, app.vlist("tasks").row_count)
                    if app.frame.status == "completed" and app.frame.caught_up:
                        break
            await settle(pilot, app)
        finally:
            proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        f = app.frame  # the fold ran in the app's child process
        assert app.fold_in == "process" and app.monitor is None
        assert f.run_id != NEWS_RUN
        assert f.status == "completed"
        assert most_in_flight == 8  # the eight analysts were on screen together
        assert f.types == {"BreakingNews": 1, "NewsAnalysis": 8, "NewsDigest": 1}
        assert app.vlist("artifacts").row_count == 10
        assert app.vlist("log").row_count == f.total


async def test_join_gate_waiting_shows_in_the_batches_view(tmp_path: Path) -> None:
    db = tmp_path / "join.db"
    flock = Flock(db=db)
    flock.agent("radiologist").consumes(
        TuiXRay, TuiLab, join=JoinSpec(by=lambda r: r.patient)
    ).with_function(lambda items: TuiDiagnosis(patients=[i.patient for i in items])).publishes(
        TuiDiagnosis
    )
    await flock.publish(TuiXRay(patient="p1"))
    await flock.publish(TuiLab(patient="p2"))
    await flock.run_until_idle()
    await flock.close()
    app = MonitorApp(db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("5")
        gates = app.table("batches").rows_by_key
        assert set(gates) == {"radiologist[0]/p1", "radiologist[0]/p2"}
        assert gates["radiologist[0]/p1"][1:4:2] == ("join p1", "1/2 types")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert list(app.screen.data) == ["TuiXRay"]


async def test_waits_for_a_database_that_does_not_exist_yet(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    app = MonitorApp(db, clock=frozen, poll_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert app.monitor is None
        assert "waiting for a database" in str(app.query_one("#status", Static).content)
        await asyncio.to_thread(write_news_log, db)
        deadline = time.monotonic() + 20
        while app.monitor is None and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await settle(pilot, app)
        assert app.monitor is not None and app.monitor.run_id == NEWS_RUN
        assert app.vlist("artifacts").row_count == 10


async def test_open_finished_task_and_walk_the_lineage(news_db: Path) -> None:
    """Artifact -> consuming tasks -> their outputs, and back to the producer."""
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("4", "home", "enter")  # the BreakingNews artifact
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        links = app.screen.detail.links
        assert [lk.key for lk in links] == [f"t-{c[:6]}-analyst-000" for c in CATEGORIES]
        await pilot.press("enter")  # its first consumer: a finished task
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.data["task"] == "t-world-analyst-000"
        assert app.screen.data["status"] == "completed"
        assert app.screen.data["model_calls"][0]["request"]["messages"][0]["role"] == "system"
        await pilot.press("down", "enter")  # its output
        await pilot.pause()
        assert app.screen.title_text.startswith("NewsAnalysis a-analysis-world-01")
        await pilot.press("enter")  # back up: its producer task
        await pilot.pause()
        assert app.screen.data["task"] == "t-world-analyst-000"


@pytest.mark.slow
async def test_runs_view_and_export_action_behind_a_confirm(news_db: Path, tmp_path: Path) -> None:
    """Runs show status, tasks, failures, cost; E exports through the CLI after a yes."""
    app = MonitorApp(news_db, clock=frozen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("1")
        deadline = time.monotonic() + 20
        while not app.run_stats and time.monotonic() < deadline:
            await pilot.pause(0.05)
        row = app.table("runs").rows_by_key[NEWS_RUN]
        assert row[2] == "completed" and row[5] == "9" and row[6] == ""  # 9 tasks, none failed
        await pilot.press("E")
        await pilot.pause()
        assert "Export run" in str(app.screen.query_one(Static).content)
        await pilot.press("y")
        deadline = time.monotonic() + 60
        while not isinstance(app.screen, DetailScreen) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.title_text.startswith("flock-es export: ok")
        assert (Path(tempfile.gettempdir()) / f"{NEWS_RUN}.jsonl").exists()
