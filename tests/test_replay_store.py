"""Replay gives a function agent the same ``ctx`` as the live run, ``ctx.store`` included.

The agent in tests/programs/store_reader.py builds its output from what
``ctx.store`` shows it (one note is private to another agent, so the store's
visibility filter matters too). Run it, replay it: identical. Then change what
the store query asks for, and the replay diverges at that agent's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flock_es.log import LogReader
from tests.conftest import ROOT, run_cli

PROGRAM = ROOT / "tests" / "programs" / "store_reader.py"


@pytest.mark.slow
def test_function_agent_reading_ctx_store_replays_identical(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    prog = tmp_path / "store_reader.py"
    prog.write_text(PROGRAM.read_text())
    out = run_cli(["run", prog, "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    with LogReader(db) as r:
        run_id = r.resolve_run("latest")
        [summary] = [
            e.body["payload"]
            for e in r.events(run_id)
            if e.kind.value == "artifact.published" and e.body["type"] == "Summary"
        ]
    assert summary == {"texts": ["1:alpha", "1:beta"]}  # the private note is not visible

    rep = run_cli(["replay", run_id, "--db", db, "--json"], cwd=tmp_path)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    report = json.loads(rep.stdout)
    assert report["identical"] is True and report["model_calls"] == 0
    assert report["tasks_replayed"] == 1

    # The store is really consulted under replay: a changed query is a divergence.
    query = "notes = await ctx.store.get_by_type(Note)"
    assert query in PROGRAM.read_text()
    prog.write_text(PROGRAM.read_text().replace(query, f"notes = ({query[8:]})[:1]"))
    changed = run_cli(["replay", run_id, "--db", db, "--json"], cwd=tmp_path)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    div = json.loads(changed.stdout)["divergence"]
    assert div["agent"] == "summarizer"
    assert div["expected"]["payload"] == {"texts": ["1:alpha", "1:beta"]}
    assert div["actual"]["payload"] == {"texts": ["1:alpha"]}
    assert "Traceback" not in changed.stdout + changed.stderr
