"""A fork restarts its inherited timers relative to the fork point (issue 10).

The parent's batch deadline is an absolute time; re-arming it as is in a fork
taken later than one batch timeout after the parent flushes the batch at once
and splits it. The fork must produce what the parent produced, by type and count,
also when workers arm its timers (a fork of a shared run, issue 13).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from flock_es.log.backends import open_reader
from flock_es.log.ports import open_store
from tests.conftest import ROOT, run_cli
from tests.test_workers import artifact_counts, kinds, latest, shared_db, workers

__all__ = ["shared_db"]  # the fixture, used by name

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


@pytest.mark.slow
def test_a_late_fork_of_a_shared_run_does_not_split_a_batch_on_workers(
    tmp_path: Path, shared_db: str
) -> None:
    """The fork is shared like its parent, so workers (and the fork's own embedded
    worker) arm its inherited batch deadline: from the fork point recorded in its
    run.started, not from the parent's clock."""
    out = run_cli(["run", PROGRAM, "--db", shared_db, "-q", "--share"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    parent = latest(shared_db)
    assert artifact_counts(shared_db, parent) == {"Seed": 4, "Part": 4, "Digest": 1}
    at = min(int(str(b["seq"])) for b in seqs(shared_db, parent, "batch.buffered"))
    time.sleep(2.5)  # longer than the batch timeout: the parent's deadline is long past
    with workers(PROGRAM, shared_db, 2, tmp_path):
        out = run_cli(["fork", parent, "--at", str(at), "--db", shared_db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    child = latest(shared_db)
    assert child != parent
    assert artifact_counts(shared_db, child) == artifact_counts(shared_db, parent)
    (started,) = kinds(shared_db, child, "run.started")
    assert isinstance(started["fork_ts"], float)
    assert asyncio.run(shared(shared_db, child))


def seqs(db: str, run: str, kind: str) -> list[dict[str, object]]:
    with open_reader(db) as r:
        return [{"seq": e.seq} for e in r.events(run) if e.kind.value == kind]


async def shared(db: str, run: str) -> bool:
    runs = await open_store(db).open_shared()
    try:
        return await runs.is_shared(run)
    finally:
        await runs.close()
