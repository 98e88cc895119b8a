"""``flock-es runs`` and ``flock-es show``, and the bad inputs every reading command refuses."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from flock_es.cli.inspect_cmd import RUNS_SHOWN
from flock_es.log.reader import LogReader
from tests.conftest import EXAMPLES, run_cli


@pytest.fixture(scope="module")
def pipeline_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("inspect") / "p.db"
    assert run_cli(["run", EXAMPLES / "pipeline.py", "--db", db, "-q"]).returncode == 0
    assert run_cli(["run", EXAMPLES / "chain.py", "--db", db, "-q"]).returncode == 0
    return db


def test_runs_lists_every_run_as_json_and_as_a_table(pipeline_db: Path) -> None:
    out = run_cli(["runs", "--db", pipeline_db, "--json"])
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)
    assert [Path(r["program"]).name for r in runs] == ["pipeline.py", "chain.py"]
    pipe = runs[0]
    assert pipe["status"] == "completed"
    assert pipe["tasks"] == {"done": 33, "failed": 0, "pending": 0}
    assert pipe["artifacts"] == 34
    assert pipe["model_calls"] == 33 and pipe["tokens"] > 0 and pipe["cost"] == 0.0
    assert pipe["duration_s"] is not None and pipe["duration_s"] >= 0
    assert pipe["parent_run"] is None and pipe["fork_seq"] is None

    table = run_cli(["runs", "--db", pipeline_db])
    assert table.returncode == 0
    assert runs[0]["run_id"] in table.stdout and runs[1]["run_id"] in table.stdout
    assert "33/0/0" in table.stdout and "completed" in table.stdout


async def _many_runs(db: Path, n: int) -> None:
    from pydantic import BaseModel

    from flock_es import Flock

    class Ping(BaseModel):
        n: int

    for i in range(n):
        flock = Flock(db=db)
        flock.agent("echo").consumes(Ping).with_function(lambda p: None)
        await flock.publish(Ping(n=i))
        await flock.run_until_idle()
        await flock.close()


@pytest.mark.slow
async def test_runs_lists_the_latest_fifty_unless_told(tmp_path: Path) -> None:
    """A log in use for months holds thousands of runs: the table lists the latest 50
    (its 3,000 rows took 2.5 s to print), says on stderr how many it left out, and
    ``--limit`` chooses; JSON, for programs, has every run unless limited."""
    db = tmp_path / "many.db"
    await _many_runs(db, RUNS_SHOWN + 3)
    every = json.loads(run_cli(["runs", "--db", db, "--json"]).stdout)
    assert len(every) == RUNS_SHOWN + 3
    ids = [r["run_id"] for r in every]

    table = run_cli(["runs", "--db", db])
    assert table.returncode == 0, table.stderr
    listed = [line.split()[0] for line in table.stdout.splitlines()[1:]]
    assert listed == ids[3:]  # the latest, oldest first, as with --limit 0
    assert table.stderr.strip() == "(3 older runs not listed: --limit 0 lists them all)"
    whole = run_cli(["runs", "--db", db, "--limit", "0"])
    assert [line.split()[0] for line in whole.stdout.splitlines()[1:]] == ids
    assert whole.stderr == ""
    two = json.loads(run_cli(["runs", "--db", db, "--json", "-n", "2"]).stdout)
    assert [r["run_id"] for r in two] == ids[-2:]
    bad = run_cli(["runs", "--db", db, "--limit", "-1"])
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "flock-es: error: --limit must be 0 (all runs) or more, not -1"


@pytest.mark.slow
def test_show_at_the_end_and_at_any_seq(pipeline_db: Path) -> None:
    with LogReader(pipeline_db) as reader:
        run = reader.runs()[0].run_id
        events = reader.events(run)
    end = run_cli(["show", run, "--db", pipeline_db, "--json"])
    assert end.returncode == 0, end.stderr
    data = json.loads(end.stdout)
    assert data["run_id"] == run and data["status"] == "completed"
    assert {t: a["count"] for t, a in data["artifacts"].items()} == {
        "News": 1,
        "Analysis": 8,
        "VerifiedAnalysis": 24,
        "Digest": 1,
    }
    assert data["tasks"]["completed"] == 33 and not data["batches"]
    assert "payload" not in data["artifacts"]["News"]["artifacts"][0]

    # Right after the first VerifiedAnalysis is buffered, the editor's batch waits.
    seq = next(e.seq for e in events if e.kind.value == "batch.buffered")
    mid = json.loads(run_cli(["show", run, "--db", pipeline_db, "--at", str(seq), "--json"]).stdout)
    assert mid["at_seq"] == seq and mid["status"] == "running"
    assert [(b["agent"], len(b["members"]), b["size"]) for b in mid["batches"]] == [
        ("editor", 1, 24)
    ]
    assert mid["tasks"]["completed"] < 33

    text = run_cli(["show", run, "--db", pipeline_db, "--at", str(seq), "--payloads"])
    assert text.returncode == 0
    assert "editor: 1/24 artifacts" in text.stdout
    assert "City opens its first fully automated library" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "r-nope"], "no run 'r-nope'"),
        (["show", "latest", "--at", "999999"], "beyond the end of run"),
        (["show", "latest", "--at", "0"], "before the start of run"),
        (["resume", "r-nope"], "no run 'r-nope'"),
        (["export", "r-nope"], "no run 'r-nope'"),
        (["fork", "latest", "--at", "999999"], "beyond the end of run"),
    ],
)
def test_bad_run_references(pipeline_db: Path, args: list[str], message: str) -> None:
    out = run_cli([*args, "--db", pipeline_db])
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", [["runs"], ["show", "latest"], ["replay", "latest"]])
def test_foreign_and_newer_databases_are_refused(tmp_path: Path, command: list[str]) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 50)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    newer = tmp_path / "newer.db"
    assert run_cli(["run", EXAMPLES / "chain.py", "--db", newer, "-q"]).returncode == 0
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    for db, message in (
        (text, "is not a flock-es database"),
        (other, "is not a flock-es database"),
        (newer, "newer flock-es"),
        (tmp_path / "missing.db", "no flock-es database"),
    ):
        out = run_cli([*command, "--db", db])
        assert out.returncode == 2, (db, out.stdout)
        assert message in out.stderr and str(db) in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_show_of_a_run_that_ended_while_it_was_read_says_running(
    pipeline_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``show`` folds the run, then asks whether its process lives: a run that ended
    in between (its ``run.finished`` after the fold's last event, its process gone)
    read "interrupted". Here the fold stops before ``run.finished``, as it does when
    the run ends during it."""
    from typer.testing import CliRunner

    from flock_es.cli import show_calls
    from flock_es.cli.app import app

    real = show_calls.text_view

    def read_before_the_end(reader: LogReader, run_id: str, at: int | None) -> object:
        return real(reader, run_id, reader.last_seq(run_id) - 1)

    monkeypatch.setattr(show_calls, "text_view", read_before_the_end)
    out = CliRunner().invoke(app, ["show", "latest", "--db", str(pipeline_db)])
    assert out.exit_code == 0, out.output
    assert "running" in out.output.splitlines()[0], out.output
