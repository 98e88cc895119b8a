"""Shared fixtures: a real SQLite file per test, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TypeVar

import pytest

from tests import property_budget

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _keep_compiled_bytecode() -> None:
    """Let the suite's processes reuse compiled bytecode when the environment turns it off.

    With ``PYTHONDONTWRITEBYTECODE`` set (this machine kind sets it), every process the
    suite starts compiles what it imports from source again: each xdist worker the
    tests and flock_es at collection (3 of its 6 CPU-s), each ``flock-es`` subprocess
    flock_es (a quarter of its 0.4 CPU-s), a few hundred times a run. So the suite
    writes bytecode as Python does by default, in ``__pycache__`` folders (ignored by
    git). Not in a cache of its own (``PYTHONPYCACHEPREFIX``), as it did: Python then
    ignores the bytecode pip compiled when it installed the dependencies, so the first
    run in a fresh venv compiled litellm and textual again (about 6 s of CPU a
    process that imports them, on a slow 2-core host).
    """
    if not sys.flags.dont_write_bytecode:
        return
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the workers and subprocesses inherit it
    sys.dont_write_bytecode = False


_keep_compiled_bytecode()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run the long crash, scale and subprocess-heavy tests (marked slow)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """The full set (``--run-slow`` or ``-m``) tries every example of the properties."""
    property_budget.FULL = bool(config.getoption("--run-slow") or config.option.markexpr)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many worker processes ``-n auto`` (the default, in pyproject.toml) starts.

    Twice the cores, at most 8: about half of a test's time is spent waiting on a
    subprocess, a commit or a Pilot frame, so two workers a core keep the cores
    busy. Starting the workers costs a few seconds, which only the whole suite
    (or a folder of it) pays back: naming files or tests (``pytest
    tests/test_gates.py``, ``path::name``) runs them in this process, and so
    does ``-n 0`` for any selection.
    """
    if any(not Path(str(arg)).is_dir() for arg in config.args):
        return 0
    return min(8, 2 * (os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out tests marked ``slow`` unless asked for.

    ``--run-slow`` (what ``.ci/run`` passes), any ``-m`` expression, or naming a
    test by its node id (``path::name``) brings them back.
    """
    if config.getoption("--run-slow") or config.option.markexpr:
        return
    if any("::" in str(arg) for arg in config.args):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh database file path for this test (created on first write)."""
    return tmp_path / "flock-es.db"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOCK_ES_", "OPENAI_"))}
    env.pop("DEFAULT_MODEL", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "120"
    # A CLI that hangs is made to print its threads' stacks (``communicate_or_dump``).
    env["PYTHONFAULTHANDLER"] = "1"
    if extra:
        env.update(extra)
    return env


CLI = (sys.executable, "-m", "flock_es.cli.app")
"""``flock-es`` as a test runs it in a subprocess: ``[*CLI, "run", program]``."""


def communicate_or_dump(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """``proc.communicate(timeout)``; a CLI still running then fails the test with its
    threads' stacks (SIGABRT: the CLIs the tests start have the fault handler on), so a
    hang seen once, on a busy CI machine, says where it was instead of only that the
    test timed out."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            _out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        pytest.fail(f"{proc.args!r} did not end in {timeout:g} s; its stacks:\n{err[-8000:]}")


def run_cli(
    args: Sequence[str | os.PathLike[str]],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    stdout: int | IO[str] = subprocess.PIPE,
    stderr: int | IO[str] = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    """Run ``flock-es ARGS`` as a user would, in a subprocess; its output captured unless
    ``stdout`` or ``stderr`` say where it goes (a file, a descriptor)."""
    return subprocess.run(
        [*CLI, *map(str, args)],
        cwd=cwd,
        env=cli_env(env),
        stdout=stdout,
        stderr=stderr,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cli(args: Sequence[str | os.PathLike[str]], cwd: Path) -> subprocess.Popen[str]:
    """Start ``flock-es ARGS`` in a subprocess, as ``run_cli`` runs it, and return at once
    (a worker, a run to stop midway); its output and errors are piped."""
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli_stderr_on_a_terminal(
    args: Sequence[str | os.PathLike[str]],
    env: dict[str, str] | None = None,
    stdout: int | IO[str] = subprocess.PIPE,
) -> tuple[subprocess.CompletedProcess[str], str]:
    """``flock-es ARGS`` with its stderr on a pseudo-terminal: the process (stdout
    captured, or where ``stdout`` says) and what the terminal received."""
    master, slave = os.openpty()
    try:
        out = run_cli(args, env=env, stdout=stdout, stderr=slave)
        os.close(slave)
        screen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side is closed and drained
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(master)
    return out, screen.decode()


def run_killed_writer(script: str, db: Path) -> str:
    """Run ``script`` (Python source, given ``db`` as its argument) in a process of its
    own from the repository's root, as the crash tests' writers that kill themselves
    do; its standard output. Fails with its standard error if it acknowledged nothing."""
    out = subprocess.run(
        [sys.executable, "-c", script, str(db)],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    assert "acknowledged" in out.stdout, out.stderr
    return out.stdout


def event_kinds(db: Path) -> list[str]:
    """The kinds of every event in a SQLite log, in commit order."""
    con = sqlite3.connect(db)
    try:
        return [k for (k,) in con.execute("SELECT kind FROM events ORDER BY seq")]
    finally:
        con.close()


def completed_tasks(db: Path) -> int:
    """How many ``task.completed`` events ``db`` has committed (0 while it cannot be read:
    not created yet, or busy): what a test polls to SIGKILL a run part-way."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            (done,) = con.execute(
                "SELECT count(*) FROM events WHERE kind = 'task.completed'"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return int(done)


def kill_cli_when(
    args: Sequence[object],
    reached: Callable[[], bool],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    then_wait: float = 0.0,
) -> bool:
    """Start ``flock-es ARGS``, SIGKILL it once ``reached()`` holds; whether it did.

    Waits at most 60 s, and no longer than the process lives. ``then_wait`` lets
    it go on that long past the point before the kill (inside a pause, say).

    Example: ``assert kill_cli_when(["run", prog, "--db", db], lambda: server.calls >= 2)``.
    """
    proc = subprocess.Popen(
        [*CLI, *map(str, args)],
        cwd=cwd,
        env=cli_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and not reached():
            time.sleep(0.005)
        done = reached()
        time.sleep(then_wait)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return done


T = TypeVar("T")


def traced(fn: Callable[[], T]) -> tuple[T, int, int]:
    """``fn()`` under tracemalloc: its result, the bytes still held once it returned
    (its result among them), and the peak while it ran.

    Example: ``state, held, peak = traced(lambda: fold(reader.iter_events(run)))``.
    """
    tracemalloc.start()
    try:
        out = fn()
        held, peak = tracemalloc.get_traced_memory()
        return out, held, peak
    finally:
        tracemalloc.stop()


# -- mounts (root) ---------------------------------------------------------------


def _mount(target: Path, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")


def remount(target: Path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(target)], check=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (root: skipped with the reason where ``mount`` is refused)."""
    mnt = tmp_path / "mnt"
    _mount(mnt, "512k")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=30, check=False)
