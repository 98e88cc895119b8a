"""``flock-es tui`` from the command line: bad input, a real terminal, no litellm."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT, cli_env, run_cli
from tests.pty_term import open_terminal, read_terminal, terminal_env
from tests.tui_logs import NEWS_RUN, write_news_log


@pytest.fixture
def news_db(tmp_path: Path) -> Path:
    db = tmp_path / "news.db"
    write_news_log(db)
    return db


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("flock-es: error:")
    for n in needles:
        assert n in err


def test_missing_database_folder_or_run(tmp_path: Path) -> None:
    """A missing file is waited for (see test_tui_app); a missing folder or run is an error."""
    one_line_error(run_cli(["tui", "--db", tmp_path / "no" / "new.db"]), "new.db")
    one_line_error(run_cli(["tui", "--db", tmp_path / "new.db", "--run", "r-x"]), "new.db")


@pytest.mark.slow
def test_waits_for_a_database_on_a_real_terminal(tmp_path: Path) -> None:
    # A relative path: the status line says "<db>: waiting for a database…", and a
    # long temporary path (pytest-xdist's adds a folder) wraps the words we look for.
    code, out = run_in_pty(
        ["tui", "--db", "new.db"],
        cols=100,
        rows=30,
        keys=b"q",
        ready=b"waiting for a database",
        cwd=tmp_path,
    )
    assert code == 0, out[-2000:]
    assert "waiting for a database" in out


def test_not_a_flock_es_database(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, this is not SQLite\n" * 50)
    one_line_error(run_cli(["tui", "--db", junk]), "notes.txt", "not a flock-es database")


def test_unknown_run(news_db: Path) -> None:
    one_line_error(run_cli(["tui", "--db", news_db, "--run", "r-nope"]), "r-nope")


def test_seq_outside_the_run(news_db: Path) -> None:
    one_line_error(run_cli(["tui", "--db", news_db, "--run", NEWS_RUN, "--at", "999"]), "999")


def test_not_a_terminal(news_db: Path) -> None:
    one_line_error(run_cli(["tui", "--db", news_db]), "terminal")


def run_in_pty(
    args: list[str],
    cols: int,
    rows: int,
    keys: bytes = b"",
    wait: float = 20.0,
    ready: bytes = b"Agents",
    cwd: Path | None = None,
) -> tuple[int, str]:
    """Run ``flock-es ARGS`` on a real pseudo-terminal of ``cols`` x ``rows``; type
    ``keys`` once the screen shows ``ready`` (waiting on what the test looks for, not
    on a fixed pause, keeps it right on a busy machine)."""
    master, slave = open_terminal(rows, cols)
    env = terminal_env()
    proc = subprocess.Popen(
        [*CLI, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
        cwd=cwd,
    )
    os.close(slave)
    out = b""
    sent = False
    for chunk in read_terminal(master, proc, wait):
        out += chunk
        if keys and not sent and ready in out:
            time.sleep(0.3)
            os.write(master, keys)
            sent = True
    try:
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, out.decode(errors="replace")


def test_terminal_too_small(news_db: Path) -> None:
    code, out = run_in_pty(["tui", "--db", str(news_db)], cols=60, rows=20)
    assert code != 0
    assert "terminal too small: 60x20" in out
    assert "Traceback" not in out


def test_starts_and_quits_on_a_real_terminal(news_db: Path) -> None:
    code, out = run_in_pty(["tui", "--db", str(news_db)], cols=120, rows=40, keys=b"q")
    assert code == 0, out[-2000:]
    assert "Traceback" not in out


def test_tui_and_help_do_not_import_litellm(news_db: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from flock_es.tui import MonitorApp

        async def main():
            app = MonitorApp(Path({str(news_db)!r}))
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.pause()
                await pilot.press("4", "7", "6")
                await pilot.pause()
        asyncio.run(main())
        print("litellm" in sys.modules or "flock_es.runtime" in sys.modules)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
    check = "import sys; from flock_es.cli.app import app; print('textual' in sys.modules, 'litellm' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", check],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "False False", proc.stderr
