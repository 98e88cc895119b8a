"""Importing a lower layer never loads a higher one, and the package root loads nothing.

Each check runs in a fresh interpreter, so nothing imported by the test session
can hide a regression. The layers contract itself (import-linter, in
pyproject.toml) runs here too, as it does in ``.ci/run``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = {"flock_es.runtime.engine", "litellm", "aiosqlite", "textual"}


def loaded_by(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("flock_es", set()),
        ("flock_es.domain", set()),
        ("flock_es.domain.events", set()),
        ("flock_es.projection", set()),
        ("flock_es.log", {"aiosqlite"}),
        ("flock_es.visibility", set()),
        ("flock_es.subscription", set()),
        ("flock_es.registry", set()),
    ],
)
def test_a_lower_layer_loads_no_engine_litellm_or_textual(module: str, allowed: set[str]) -> None:
    assert (HEAVY - allowed) & loaded_by(module) == set()


def test_the_event_definitions_load_without_pydantic_or_the_runtime() -> None:
    modules = loaded_by("flock_es.domain.events")
    assert not {m for m in modules if m.startswith(("pydantic", "flock_es.runtime"))}


def test_the_public_api_resolves_lazily_and_completely() -> None:
    code = (
        "import sys, flock_es\n"
        "assert 'flock_es.runtime.flock' not in sys.modules\n"
        "missing = [n for n in flock_es.__all__ if getattr(flock_es, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert set(flock_es.__all__) <= set(dir(flock_es))\n"
        "from flock_es import Flock, fold\n"
        "assert Flock.__module__ == 'flock_es.runtime.flock'\n"
        "try:\n    flock_es.Nope\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "has no attribute 'Nope'" in out.stdout


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_the_layers_contract_is_kept() -> None:
    out = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_snapshot_job_loads_neither_asyncio_nor_the_runtime() -> None:
    """A live run starts the job as a process of its own: its start-up is CPU taken
    from the run (asyncio alone was a fifth of it, for an annotation)."""
    modules = loaded_by("flock_es.log.snapshot_job")
    assert "asyncio" not in modules
    assert "pydantic" not in modules  # pydantic_core's JSON parser only
    assert not {m for m in modules if m.startswith("flock_es.runtime")}
