"""A run of large payloads holds a bounded part of them (``projection/payload_size.py``).

The runtime let go of artifact views and built objects by their number only
(4,096 each): a pipeline of 300 documents of 1 MB peaked at 650 MB, as every
payload stayed in memory. Views and objects now also go once their payloads'
strings pass ``HELD_CHARS`` characters, and are read back from the log when asked.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from flock_es.log import LogReader
from flock_es.projection.fold import fold
from flock_es.projection.payload_size import HELD_CHARS
from flock_es.projection.state import RunState
from tests.conftest import CLI, ROOT, cli_env, run_cli

PROGRAM = ROOT / "tests" / "programs" / "documents.py"


def _peak_mb(args: list[str | Path], env: dict[str, str], cwd: Path) -> float:
    """Run ``flock-es ARGS``; its peak RSS in MB (the process's own, from wait4). Its
    stderr goes to a file: a pipe nobody reads while it runs could fill and stall it."""
    err = cwd / "stderr.txt"
    with err.open("w") as sink:
        cmd = [*CLI, *map(str, args)]
        proc = subprocess.Popen(cmd, cwd=cwd, env=cli_env(env), stdout=sink, stderr=sink)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen need not
    assert proc.returncode == 0, err.read_text()
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_a_document_pipeline_holds_a_bounded_part_of_its_payloads(tmp_path: Path) -> None:
    """100 documents of 500 KB, each cleaned into a copy as large: 100 MB of payload.
    The run and its replay peak within 40 MB of a run of 4 documents (60 documents
    peaked 58 and 54 MB above it when every payload stayed; now 13 and 21)."""
    peaks = {}
    for docs in (4, 100):
        db = tmp_path / f"d{docs}.db"
        env = {"DOCS": str(docs), "KB": "500"}
        run = _peak_mb(["run", PROGRAM, "--db", db, "-q"], env, tmp_path)
        replay = _peak_mb(["replay", "latest", "--db", db], env, tmp_path)
        peaks[docs] = (run, replay)
    (small_run, small_replay), (big_run, big_replay) = peaks[4], peaks[100]
    assert big_run - small_run < 40, peaks
    assert big_replay - small_replay < 40, peaks


def _fold(db: Path, compact: bool) -> RunState:
    with LogReader(db) as r:
        run = r.latest_run()
        assert run is not None
        return fold(r.iter_events(run.run_id), compact=compact)


def test_a_compact_fold_of_the_log_lets_go_past_the_characters_it_holds(tmp_path: Path) -> None:
    """40 documents of 500 KB and their cleaned copies: fewer views than ``PRUNE_AT``,
    but 40 MB of payload. A compact fold of the log (a resume's) holds at most
    ``HELD_CHARS`` of it, and one more document; a full fold (``show``) holds all,
    each view weighing its event's body as the log has it."""
    db = tmp_path / "d.db"
    out = run_cli(["run", PROGRAM, "--db", db, "-q"], env={"DOCS": "40", "KB": "500"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    compact = _fold(db, compact=True)
    held = sum(v.chars for v in compact.artifacts.values())
    assert held <= HELD_CHARS + 600_000
    assert compact.type_counts["Document"] == compact.type_counts["CleanDocument"] == 40
    full = _fold(db, compact=False)
    assert len(full.artifacts) == 120
    docs = [v for v in full.artifacts.values() if v.type == "Document"]
    assert all(500_000 < v.chars < 501_000 for v in docs)


def test_the_object_cache_lets_go_of_its_oldest_large_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large objects count by their payload's characters: past ``HELD_CHARS`` the oldest
    large ones go, the small ones stay (bounded by the cache's count alone)."""
    from pydantic import BaseModel

    from flock_es.runtime import object_cache

    class Obj(BaseModel):
        n: int

    monkeypatch.setattr(object_cache, "OBJECT_CACHE", 100)
    cache = object_cache.ObjectCache()
    third = HELD_CHARS // 3
    for i in range(5):
        cache.put(f"big{i}", Obj(n=i))
        cache.weigh(f"big{i}", third)
        cache.put(f"small{i}", Obj(n=i))
    assert [k for k in cache if k.startswith("big")] == ["big2", "big3", "big4"]
    assert all(f"small{i}" in cache for i in range(5))
    assert cache.heavy_chars == 3 * third
    for i in range(200):  # the count bound pushes the large ones out too, and their size
        cache.put(f"x{i}", Obj(n=i))
    assert len(cache) == 100 and cache.heavy_chars == 0 and not cache.heavy
    cache.weigh("x199", third)
    cache.clear()
    assert not cache and not cache.heavy and cache.heavy_chars == 0
