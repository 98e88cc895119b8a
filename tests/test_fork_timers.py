"""A fork restarts its inherited timers relative to the fork point (issue 10).

The parent's batch deadline is an absolute time; re-arming it as is in a fork
taken later than one batch timeout after the parent flushes the batch at once
and splits it. The fork must produce what the parent produced, by type and count.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

PROGRAM = ROOT / "tests" / "programs" / "batch_deadline.py"


def produced(db: Path, run_id: str) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT json_extract(body, '$.type'), count(*) FROM events "
            "WHERE run_id = ? AND kind = 'artifact.published' GROUP BY 1",
            (run_id,),
        ).fetchall()
    finally:
        con.close()
    return {t: n for t, n in rows}


def runs(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r for (r,) in con.execute("SELECT run_id FROM runs ORDER BY started_at")]
    finally:
        con.close()


@pytest.mark.slow
def test_a_late_fork_does_not_split_a_batch(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    out = run_cli(["run", PROGRAM, "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (parent,) = runs(db)
    assert produced(db, parent) == {"Seed": 4, "Part": 4, "Digest": 1}
    con = sqlite3.connect(db)
    try:
        (at,) = con.execute(
            "SELECT min(seq) FROM events WHERE run_id = ? AND kind = 'batch.buffered'", (parent,)
        ).fetchone()
    finally:
        con.close()
    time.sleep(2.5)  # longer than the batch timeout: the parent's deadline is long past
    out = run_cli(["fork", parent, "--at", str(at), "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    child = next(r for r in runs(db) if r != parent)
    assert produced(db, child) == produced(db, parent)
