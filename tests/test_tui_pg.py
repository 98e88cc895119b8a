"""The monitor on PostgreSQL: the same views through the EventStore port."""

from __future__ import annotations

import time
from pathlib import Path

from flock_es.cli.tui_cmd import resolve
from flock_es.tui import MonitorApp
from flock_es.tui.screens import DetailScreen
from tests.conftest import EXAMPLES, run_cli
from tests.pg import pg_url  # noqa: F401  (fixture)


async def test_tui_reads_a_news_run_on_postgres(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    proc = run_cli(["run", str(EXAMPLES / "news.py"), "-m", "offline", "--db", pg_url, "-q"])
    assert proc.returncode == 0, proc.stderr
    run_id, _ = resolve(pg_url, "latest", None)
    app = MonitorApp(pg_url)
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 30
        while not app.settled and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert app.frame.run_id == run_id
        assert app.frame.run_status() == "completed"
        assert app.vlist("artifacts").row_count == 10
        assert len(app.table("agents").rows_by_key) == 9
        await pilot.press("3", "m", "home", "enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.data["status"] == "completed"
