"""Shared fixtures: a real SQLite file per test, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run the long crash, scale and subprocess-heavy tests (marked slow)",
    )


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
    if extra:
        env.update(extra)
    return env


def run_cli(
    args: Sequence[str | os.PathLike[str]],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``flock-es ARGS`` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "flock_es.cli.app", *map(str, args)],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
