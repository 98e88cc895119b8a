"""The install layout: tui/ installs as flock_es.tui, never as a top-level ``tui``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setuptools_table() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    table: dict[str, object] = data["tool"]["setuptools"]
    return table


def test_every_package_folder_is_listed() -> None:
    """The package list is explicit (package-dir needs it): a new folder must join it."""
    listed = set(setuptools_table()["packages"])  # type: ignore[call-overload]
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "flock_es").rglob("__init__.py")
    }
    on_disk |= {"flock_es.tui"}
    assert listed == on_disk


def test_tui_folder_installs_as_flock_es_tui(tmp_path: Path) -> None:
    """Outside the repo ``import tui`` fails; ``flock_es.tui`` is the monitor."""
    assert setuptools_table()["package-dir"] == {"flock_es.tui": "tui"}
    script = (
        "import importlib.util, sys\n"
        "print(importlib.util.find_spec('tui') is None)\n"
        "import flock_es.tui.terminal as t\n"
        "print(t.MIN_WIDTH, 'textual' in sys.modules)\n"
        "from flock_es.tui import MonitorApp\n"
        "print(MonitorApp.__module__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["True", "80 False", "flock_es.tui.app"]
