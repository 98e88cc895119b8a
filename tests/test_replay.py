"""``flock-es replay``: identical runs, divergences at the right seq, no model calls."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from flock_es.log.reader import LogReader
from tests.conftest import EXAMPLES, ROOT, run_cli

PROGRAMS = ROOT / "tests" / "programs"


def replay_json(db: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    out = run_cli(["replay", "latest", "--db", db, "--json", *extra])
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else {}, out.stderr


def recorded(db: Path) -> list[tuple[int, str, dict[str, Any]]]:
    with LogReader(db) as reader:
        return [
            (e.seq or 0, e.kind.value, e.body) for e in reader.events(reader.resolve_run("latest"))
        ]


def edit(prog: Path, old: str, new: str) -> None:
    """Change ``prog`` as a quick edit would: its mtime stays in the same second (here,
    exactly), which a bytecode cache cannot tell from no change at all when the size
    stays too; replay must run the new text."""
    st = prog.stat()
    prog.write_text(prog.read_text().replace(old, new))
    os.utime(prog, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def program_run(tmp_path: Path) -> tuple[Path, Path]:
    prog = tmp_path / "prog.py"
    shutil.copy(PROGRAMS / "replay_program.py", prog)
    db = tmp_path / "r.db"
    out = run_cli(["run", prog, "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return prog, db


def test_unchanged_pipeline_replays_identical_with_zero_model_calls(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    assert run_cli(["run", EXAMPLES / "pipeline.py", "--db", db, "-q"]).returncode == 0
    code, report, err = replay_json(db)
    assert code == 0, err
    assert report["verdict"] == "identical" and report["divergence"] is None
    assert report["model_calls"] == 0
    calls = sum(k == "model.called" for _, k, _ in recorded(db))
    assert calls == 33 and report["served_calls"] == calls
    assert report["tasks_replayed"] == 33
    assert report["program_hash"]["recorded"] == report["program_hash"]["current"]

    text = run_cli(["replay", "latest", "--db", db])
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[-1] == "identical"
    assert "0 model calls made" in text.stdout
    assert any("editor" in ln and "completed" in ln for ln in lines)
    assert "warning" not in text.stderr


def test_changed_where_predicate_diverges_at_the_schedule(program_run: tuple[Path, Path]) -> None:
    prog, db = program_run
    assert replay_json(db)[0] == 0
    edit(prog, "i.n >= 3", "i.n >= 4")
    code, report, err = replay_json(db)
    assert code == 1
    assert "changed since the run was recorded" in err
    assert report["program_hash"]["recorded"] != report["program_hash"]["current"]
    assert report["program_hash"]["recorded"] in err and report["program_hash"]["current"] in err
    # Item(n=3) no longer matches `big`: the first decision that differs is big's schedule.
    events = recorded(db)
    item3 = next(
        b["id"] for _, k, b in events if k == "artifact.published" and b["payload"] == {"n": 3}
    )
    expected_seq = next(
        s
        for s, k, b in events
        if k == "task.scheduled" and b["agent"] == "big" and b["inputs"] == [item3]
    )
    div = report["divergence"]
    assert div["seq"] == expected_seq
    assert "schedule big" in json.dumps(div["expected"])
    assert "schedule big" not in json.dumps(div["actual"])
    assert report["model_calls"] == 0


@pytest.mark.slow  # the narrowed predicate above stays in the quick set
def test_widened_predicate_diverges_too(program_run: tuple[Path, Path]) -> None:
    prog, db = program_run
    edit(prog, "i.n >= 3", "i.n >= 2")
    code, report, _ = replay_json(db)
    assert code == 1
    events = recorded(db)
    item2 = next(
        b["id"] for _, k, b in events if k == "artifact.published" and b["payload"] == {"n": 2}
    )
    first_for_item2 = min(
        s for s, k, b in events if k == "task.scheduled" and b["inputs"] == [item2]
    )
    assert report["divergence"]["seq"] == first_for_item2
    assert "schedule big" in json.dumps(report["divergence"]["actual"])


def test_changed_function_return_diverges_at_its_first_output(
    program_run: tuple[Path, Path],
) -> None:
    prog, db = program_run
    edit(prog, "Doubled(n=i.n * 2)", "Doubled(n=i.n * 2 + 1)")
    code, report, _ = replay_json(db)
    assert code == 1
    first = min(
        s for s, k, b in recorded(db) if k == "artifact.published" and b["type"] == "Doubled"
    )
    div = report["divergence"]
    assert div["seq"] == first and div["agent"] == "doubler"
    assert div["expected"]["payload"]["n"] + 1 == div["actual"]["payload"]["n"]
    timeline = report["timeline"]
    assert timeline[-1]["seq"] == first and timeline[-1]["ok"] is False

    text = run_cli(["replay", "latest", "--db", db])
    assert text.returncode == 1
    assert f"diverged at seq {first} (doubler)" in text.stdout
    assert "expected (recorded)" in text.stdout and "actual   (replayed)" in text.stdout


def test_changed_prompt_of_a_model_agent_is_a_divergence(program_run: tuple[Path, Path]) -> None:
    prog, db = program_run
    edit(prog, "Describe a big item", "Describe it in French")
    code, report, _ = replay_json(db)
    assert code == 1
    assert "prompt of model call 0" in report["divergence"]["what"]
    assert report["divergence"]["agent"] == "describer"
    assert report["model_calls"] == 0


@pytest.mark.slow
def test_replay_of_a_crashed_and_resumed_run_is_identical(tmp_path: Path) -> None:
    from tests.test_crash import PROGRAM, kill_at

    db = tmp_path / "k.db"
    kill_at(db, 60)
    assert run_cli(["resume", "latest", "--db", db, "-q"]).returncode == 0
    code, report, err = replay_json(db, "--no-timeline")
    assert code == 0, (err, report.get("divergence"))
    assert report["model_calls"] == 0 and "timeline" not in report
    assert PROGRAM.name in report["program"]


def test_replay_errors_are_one_line_exit_2(tmp_path: Path, program_run: tuple[Path, Path]) -> None:
    prog, db = program_run
    out = run_cli(["replay", "r-nope", "--db", db])
    assert out.returncode == 2 and "no run 'r-nope'" in out.stderr
    prog.unlink()
    out = run_cli(["replay", "latest", "--db", db])
    assert out.returncode == 2 and "--program" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # 3 s: a run and two replays
def test_join_replays_identical_and_a_changed_join_key_diverges(tmp_path: Path) -> None:
    prog = tmp_path / "join.py"
    shutil.copy(PROGRAMS / "join_program.py", prog)
    db = tmp_path / "j.db"
    assert run_cli(["run", prog, "--db", db, "-q"]).returncode == 0
    code, report, _ = replay_json(db)
    assert code == 0 and report["tasks_replayed"] == 4
    assert any("gate of shipper takes" in s["text"] for s in report["timeline"])
    prog.write_text(prog.read_text().replace("x.order_id)", "x.order_id % 2)"))
    code, report, _ = replay_json(db)
    assert code == 1
    assert "triggers" in report["divergence"]["what"]
    assert report["divergence"]["agent"] == "shipper"


def test_an_output_no_subscriber_takes_must_still_rebuild(program_run: tuple[Path, Path]) -> None:
    """Nothing consumes Doubled, so nothing decides on its object; replay still checks
    it against the current type and reports where that no longer takes it. The agent
    builds it unvalidated, so its output still serialises as recorded: the type's check
    of what is published (``PayloadInvalid``, as a live run makes it) fails the task."""
    prog, db = program_run
    edit(prog, "class Doubled(BaseModel):\n    n: int", "class Doubled(BaseModel):\n    n: str")
    edit(prog, "Doubled(n=i.n * 2)", "Doubled.model_construct(n=i.n * 2)")
    code, report, _ = replay_json(db, "--no-timeline")
    assert code == 1
    first = min(
        s for s, k, b in recorded(db) if k == "artifact.published" and b["type"] == "Doubled"
    )
    div = report["divergence"]
    assert div["seq"] == first and div["agent"] == "doubler"
    assert "failed on replay" in div["what"], div
    assert "Doubled is not valid: n: Input should be a valid string" in str(div["actual"]), div
