"""Where ``flock-es run`` writes: the program's stdout stays on stdout; progress
and the summary go to stderr, unwrapped, with no stale first line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, EXAMPLES, run_cli
from tests.pty_term import open_terminal, read_terminal, terminal_env

DIGEST = "Total Analysts: 8"


def test_in_a_pipe_the_digest_is_on_stdout_and_the_summary_on_stderr(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    out = run_cli(["run", EXAMPLES / "news.py", "--db", db], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert DIGEST in out.stdout and "perspectives:" in out.stdout
    assert "NewsAnalysis 8" not in out.stdout and "Run r-" not in out.stdout
    assert "completed" in out.stderr and "NewsAnalysis 8 · NewsDigest 1" in out.stderr
    assert DIGEST not in out.stderr


@pytest.mark.slow
def test_plain_progress_lines_are_never_stale_nor_wrapped(tmp_path: Path) -> None:
    db = tmp_path / "slow.db"
    args: list[str | Path] = [
        "run",
        EXAMPLES / "news.py",
        "--db",
        db,
        "--model",
        "offline?latency=1.5",
    ]
    out = run_cli(args, cwd=tmp_path, env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    progress = [line for line in out.stderr.splitlines() if line.startswith("[")]
    assert progress, out.stderr
    assert not any(" 0 running" in p and " 0 done" in p for p in progress), progress
    # eight analysts in flight make a line far longer than 80 columns: one line
    wide = [p for p in progress if "8 running (" in p]
    assert wide and len(wide[0]) > 80 and wide[0].endswith("artifacts"), progress


@pytest.mark.slow
def test_quiet_prints_only_the_summary_on_stderr(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    out = run_cli(["run", EXAMPLES / "news.py", "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0
    assert out.stderr.startswith("Run r-") and DIGEST in out.stdout


def run_with_terminal_stderr(
    args: list[str], stdout_path: Path, extra_env: dict[str, str] | None = None
) -> tuple[int, str]:
    """``flock-es ARGS > stdout_path`` with stderr on a real pseudo-terminal."""
    master, slave = open_terminal(rows=40, cols=100)
    env = terminal_env(extra_env)
    with stdout_path.open("wb") as sink:
        proc = subprocess.Popen(
            [*CLI, *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=slave,
            env=env,
            close_fds=True,
        )
    os.close(slave)
    chunks = list(read_terminal(master, proc, seconds=60))
    code = proc.wait(timeout=10)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_redirected_stdout_gets_the_digest_while_the_terminal_gets_the_rest(
    tmp_path: Path,
) -> None:
    """``flock-es run examples/news.py > out.txt`` typed in a terminal."""
    out_txt = tmp_path / "out.txt"
    args = ["run", str(EXAMPLES / "news.py"), "--db", str(tmp_path / "t.db")]
    code, terminal = run_with_terminal_stderr(args, out_txt)
    assert code == 0, terminal
    written = out_txt.read_text()
    assert DIGEST in written and "perspectives:" in written
    assert "Run r-" not in written and "\x1b" not in written
    assert "Run r-" in terminal and "NewsDigest 1" in terminal
    assert DIGEST not in terminal


@pytest.mark.slow
def test_the_terminal_panel_says_what_an_idle_run_waits_for(tmp_path: Path) -> None:
    program = Path(__file__).parent / "programs" / "stop_waiting.py"
    args = ["run", str(program), "--db", str(tmp_path / "w.db")]
    env_program = {"BATCH_TIMEOUT": "2.5", "STOP_AFTER": "0"}
    code, terminal = run_with_terminal_stderr(args, tmp_path / "out.txt", env_program)
    assert code == 0, terminal
    assert "waiting: editor batch 7/8, flush in " in terminal
