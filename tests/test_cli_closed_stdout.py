"""A stdout that cannot be written: a reader that went away (``| head -1``) or a full
disk (``> /dev/full``). A run carries on to its own end (its agents are paid work);
other commands stop with one line or, for a closed pipe, quietly — never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, EXAMPLES, cli_env, run_cli


def _cli_with_closed_stdout(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``flock-es ARGS`` with a stdout pipe whose reader is gone before it starts."""
    proc = subprocess.Popen(
        [*CLI, *args],
        cwd=cwd,
        env=cli_env(None),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(timeout=60), err


def _cli_to_dev_full(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``flock-es ARGS`` with stdout on /dev/full: every write fails with ENOSPC."""
    with open("/dev/full", "w") as full:
        return run_cli(args, cwd, stdout=full)


def _run_status(db: Path, cwd: Path) -> str:
    out = run_cli(["show", "latest", "--db", db, "--json"], cwd=cwd)
    assert out.returncode == 0, out.stderr
    import json

    return str(json.loads(out.stdout)["status"])


# The quick set checks one command; the other two (about 1.2 s each) are marked slow.
COMMANDS = [
    ["runs"],
    pytest.param(["show", "latest"], marks=pytest.mark.slow),
    pytest.param(["export", "latest", "-o", "-"], marks=pytest.mark.slow),
]


def test_a_run_whose_reader_went_away_completes(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    code, err = _cli_with_closed_stdout(
        ["run", str(EXAMPLES / "news.py"), "--db", str(db)], tmp_path
    )
    assert code == 0, err
    assert "Traceback" not in err
    assert err.count("stdout was closed by its reader; the run goes on") == 1, err
    assert "completed" in err and "9 done, 0 failed" in err
    assert _run_status(db, tmp_path) == "completed"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_run_whose_stdout_is_full_completes(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    out = _cli_to_dev_full(["run", str(EXAMPLES / "news.py"), "--db", str(db)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "stdout cannot be written (No space left on device)" in out.stderr
    assert "Traceback" not in out.stderr
    assert _run_status(db, tmp_path) == "completed"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", COMMANDS)
def test_other_commands_say_stdout_is_full_in_one_line(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "news.db"
    assert run_cli(["run", EXAMPLES / "news.py", "--db", db, "-q"], cwd=tmp_path).returncode == 0
    out = _cli_to_dev_full([*command, "--db", str(db)], tmp_path)
    assert out.returncode == 2
    assert (
        out.stderr == "flock-es: error: cannot write to standard output: No space left on device\n"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_other_commands_stop_quietly_when_the_reader_went_away(
    tmp_path: Path, command: list[str]
) -> None:
    db = tmp_path / "news.db"
    assert run_cli(["run", EXAMPLES / "news.py", "--db", db, "-q"], cwd=tmp_path).returncode == 0
    code, err = _cli_with_closed_stdout([*command, "--db", str(db)], tmp_path)
    assert (code, err) == (1, "")
