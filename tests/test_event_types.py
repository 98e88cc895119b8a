"""mypy, not a reviewer, catches a misspelt event field: the definitions are the check.

Runs the real mypy on a small module that reads and builds bodies the way the
fold and ``decide`` do, with one field misspelt in each direction.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from tests.conftest import ROOT

SNIPPET = textwrap.dedent(
    """
    from flock_es.domain.events import Event, EventKind, TaskScheduled, body_as, trusted_event


    def inputs_of(e: Event) -> list[str]:
        return body_as(e, TaskScheduled)["inptus"]


    def schedule() -> Event:
        body: TaskScheduled = {"task_id": "t-1", "agent": "a", "sub_index": 0, "input": []}
        return trusted_event("r-1", EventKind.TASK_SCHEDULED, body, 0.0)


    def fine(e: Event) -> list[str]:
        return body_as(e, TaskScheduled)["inputs"]
    """
)


def test_mypy_reports_a_misspelt_field_where_a_body_is_read_and_where_it_is_built(
    tmp_path: Path,
) -> None:
    module = tmp_path / "misspelt.py"
    module.write_text(SNIPPET)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    # Only the snippet is checked: the modules it imports are read for their types
    # (silently), and third-party packages are left out, which keeps this to seconds.
    args = ["--strict", "--no-site-packages", "--follow-imports=silent"]
    # A cache kept between runs (mypy checks it against the sources): a cold one costs
    # 4 s, most of this test, to read flock_es.domain.events and the builtins again.
    cache = Path(tempfile.gettempdir()) / f"flock-es-tests-mypy-cache-{os.getuid()}"
    args += ["--config-file", str(config), "--cache-dir", str(cache)]
    out = subprocess.run(
        [sys.executable, "-m", "mypy", *args, str(module)],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=110,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 1, report
    assert 'TypedDict "TaskScheduled" has no key "inptus"' in report
    assert '"input"' in report and '"inputs"' in report  # extra key, and the missing one
    assert "misspelt.py:14" not in report  # the correct spelling passes
