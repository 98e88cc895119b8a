"""`flock-es tui --db postgresql://...` following a live run that several real
`flock-es worker` processes execute (issue 13): the monitor sees the run go on
to completion, and each task's row names the worker that started it, as the
log recorded it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flock_es.tui import MonitorApp
from tests.conftest import communicate_or_dump
from tests.pg import pg_url  # noqa: F401  (fixture)
from tests.test_tui_app import cells, settle
from tests.test_workers import all_kinds, cli, fanout, workers


@pytest.mark.slow
@pytest.mark.timeout(240)  # the waits below add up to 170 s at most
async def test_the_monitor_follows_workers_on_postgres_and_names_each_task_s_worker(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    # 24 tasks of 2 s on 2 x 4 slots: the run goes on about 6 s, long enough for a
    # monitor started on a busy machine to see it running before it completes.
    program, env = fanout(24, 2.0)
    with workers(program, pg_url, 2, tmp_path, "--concurrency", "4", env=env):
        run = cli("run", program, "--db", pg_url, "--no-execute", "-q", env=env)
        deadline = time.monotonic() + 60
        while not all_kinds(pg_url, "task.scheduled") and time.monotonic() < deadline:
            time.sleep(0.1)
        app = MonitorApp(pg_url)
        async with app.run_test(size=(160, 40)) as pilot:
            seen: set[str] = set()
            while time.monotonic() < deadline:
                await pilot.pause(0.2)
                if app.settled:
                    seen.add(app.frame.run_status())
                if "completed" in seen:
                    break
            assert seen >= {"running", "completed"}, seen  # followed live, to the end
            await pilot.press("3", "m")  # the tasks view, all of them
            await settle(pilot, app)
            tasks = app.vlist("tasks")
            assert tasks.source.columns[-1] == "worker"
            recorded = {
                str(b["task_id"]): str(b["worker"]) for b in all_kinds(pg_url, "task.started")
            }
            shown = {task: cells(tasks, task)[-1] for task in recorded}
        # The run ends at once here (its last commit is what the monitor saw). It
        # hung once in CI, for over 45 s: if it does again, its stacks say where.
        _out, err = communicate_or_dump(run, 90)
    assert run.returncode == 0, err
    assert len(recorded) == 24 and shown == recorded
    assert len(set(recorded.values())) == 2  # both workers took part
