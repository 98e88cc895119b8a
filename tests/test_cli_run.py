"""``flock-es run`` as a user runs it: a subprocess, a real database, real examples."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, cli_env, run_cli

CATEGORIES = {
    "world",
    "technology",
    "business",
    "sports",
    "entertainment",
    "science",
    "politics",
    "health",
}


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_news_example_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    out = run_cli(["run", EXAMPLES / "news.py", "--db", db], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "perspectives:" in out.stdout and "Total Analysts: 8" in out.stdout
    assert (  # the summary is on stderr, the program's digest on stdout
        "completed" in out.stderr
        and "NewsAnalysis 8" in out.stderr
        and "NewsDigest 1" in out.stderr
    )
    assert "Traceback" not in out.stderr
    payloads = [
        json.loads(str(p))
        for (p,) in rows(
            db,
            "SELECT json_extract(e.body, '$.payload') FROM artifacts a "
            "JOIN events e ON e.seq = a.seq WHERE a.type='NewsAnalysis'",
        )
    ]
    assert {p["category"] for p in payloads} == CATEGORIES
    assert rows(db, "SELECT count(*) FROM artifacts WHERE type='NewsDigest'") == [(1,)]
    kinds = [
        (k, json.loads(str(b)).get("agent", ""))
        for k, b in rows(db, "SELECT kind, body FROM events ORDER BY seq")
    ]
    first_done = next(i for i, (k, a) in enumerate(kinds) if k == "task.completed")
    started_before = {a for k, a in kinds[:first_done] if k == "task.started"}
    assert started_before == {f"{c}_analyst" for c in CATEGORIES}


def test_tutorial_trace_query_works_on_our_database(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    assert run_cli(["run", EXAMPLES / "news.py", "--db", db, "-q"], cwd=tmp_path).returncode == 0
    query = (
        "SELECT name, start_time, duration_ms FROM spans "
        "WHERE name LIKE '%_analyst.execute' ORDER BY start_time"
    )
    spans = rows(db, query)
    assert len(spans) == 8 and all(float(str(d)) >= 0 for _, _, d in spans)
    if shutil.which("sqlite3"):
        cli = subprocess.run(
            ["sqlite3", str(db), query], capture_output=True, text=True, timeout=30
        )
        assert cli.returncode == 0 and cli.stdout.count(".execute") == 8


def test_program_also_runs_as_plain_python(tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "news.py")],
        cwd=tmp_path,
        env=cli_env({"FLOCK_ES_DB": str(db)}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Total Analysts: 8" in out.stdout
    assert rows(db, "SELECT count(*) FROM artifacts WHERE type='NewsAnalysis'") == [(8,)]
    # Nobody closed the run, but its process ended with nothing left to do.
    listed = run_cli(["runs", "--db", db, "--json"], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["completed"]


@pytest.mark.parametrize(
    "name",
    # The quick set runs pipeline, chain (tests/test_inspect.py) and routing (below) anyway.
    [
        *(pytest.param(n, marks=pytest.mark.slow) for n in ("chain", "pipeline", "routing")),
        "function_agent",
    ],
)
def test_other_examples_run(tmp_path: Path, name: str) -> None:
    out = run_cli(["run", EXAMPLES / f"{name}.py", "--db", tmp_path / "x.db", "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert " 0 failed" in out.stderr


def test_default_database_lives_under_data(tmp_path: Path) -> None:
    out = run_cli(["run", EXAMPLES / "routing.py", "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "data" / "flock-es.db").exists()
    env_db = tmp_path / "elsewhere.db"
    out = run_cli(
        ["run", EXAMPLES / "routing.py", "-q"], cwd=tmp_path, env={"FLOCK_ES_DB": str(env_db)}
    )
    assert out.returncode == 0 and env_db.exists()


BAD_PROGRAMS = {
    "syntax.py": ("from flock_es import Flock\nflock = Flock(\n", "syntax error"),
    "noflock.py": ("x = 1\nasync def main():\n    pass\n", "defines no Flock"),
    "nomain.py": ("from flock_es import Flock\nflock = Flock()\n", "defines no main()"),
    "invalid.py": (
        "from pydantic import BaseModel, Field\nfrom flock_es import Flock\n"
        "class News(BaseModel):\n    story: str = Field(min_length=100)\n"
        "flock = Flock()\n"
        "async def main():\n    await flock.publish(News(story='short'))\n",
        "failed validation: story",
    ),
    "badagent.py": (
        "from pydantic import BaseModel\nfrom flock_es import Flock\n"
        "flock = Flock()\nflock.agent('x').consumes()\n",
        ".consumes() needs at least one type",
    ),
}


@pytest.mark.parametrize(
    "name",
    [
        n if n in ("syntax.py", "badagent.py") else pytest.param(n, marks=pytest.mark.slow)
        for n in sorted(BAD_PROGRAMS)
    ],
)
def test_bad_programs_get_one_line_errors(tmp_path: Path, name: str) -> None:
    source, expected = BAD_PROGRAMS[name]
    prog = tmp_path / name
    prog.write_text(source)
    db = tmp_path / "x.db"
    out = run_cli(["run", prog, "--db", db], cwd=tmp_path)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flock-es: error:"), out.stderr
    assert expected in lines[0] and name in lines[0]


def test_a_program_holding_a_nul_byte_is_one_line_without_a_line_number(tmp_path: Path) -> None:
    prog = tmp_path / "nul.py"
    prog.write_bytes(b"x = 1\x00\n")
    out = run_cli(["run", prog, "--db", tmp_path / "x.db"], cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"flock-es: error: {prog}: syntax error: "), line
    assert "null bytes" in line and "None" not in line


def test_a_syntax_error_in_a_module_the_program_imports_names_that_module(
    tmp_path: Path,
) -> None:
    (tmp_path / "helper.py").write_text("x = 1\ny = (\n")
    prog = tmp_path / "prog.py"
    prog.write_text("import helper\n")
    out = run_cli(["run", prog, "--db", tmp_path / "x.db"], cwd=tmp_path)
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"flock-es: error: {tmp_path / 'helper.py'}:2: syntax error"), line


def test_invalid_publish_fails_the_run_but_keeps_the_log(tmp_path: Path) -> None:
    prog = tmp_path / "late.py"
    prog.write_text(
        "from pydantic import BaseModel, Field\nfrom flock_es import Flock\n"
        "class News(BaseModel):\n    story: str = Field(min_length=10)\n"
        "flock = Flock()\n"
        "flock.agent('a').consumes(News).with_function(lambda n: None)\n"
        "async def main():\n"
        "    await flock.publish(News(story='long enough story'))\n"
        "    await flock.publish(News(story='short'))\n"
    )
    db = tmp_path / "x.db"
    out = run_cli(["run", prog, "--db", db], cwd=tmp_path)
    assert out.returncode != 0 and "late.py:9" in out.stderr and "Traceback" not in out.stderr
    assert rows(db, "SELECT status FROM runs") == [("failed",)]
    assert rows(db, "SELECT count(*) FROM artifacts") == [(1,)]
    integrity = rows(db, "PRAGMA integrity_check")
    assert integrity == [("ok",)]


def test_missing_program_path(tmp_path: Path) -> None:
    out = run_cli(["run", tmp_path / "nope.py"], cwd=tmp_path)
    assert out.returncode == 2 and "nope.py: no such file" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_unknown_provider_and_missing_key_fail_before_any_work(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    out = run_cli(
        ["run", EXAMPLES / "news.py", "--db", db, "-m", "notaprovider/some-model"], cwd=tmp_path
    )
    assert out.returncode == 2 and "unknown model provider" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = run_cli(["run", EXAMPLES / "news.py", "--db", db, "-m", "openai/gpt-4.1"], cwd=tmp_path)
    assert out.returncode == 2 and "OPENAI_API_KEY" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not db.exists()  # nothing started


def test_help_never_imports_litellm_or_textual() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flock_es.cli.app", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=cli_env(),
    )
    assert out.returncode == 0 and "run" in out.stdout
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()}
    assert not any(m.startswith(("litellm", "textual")) for m in imported)


def test_the_tutorial_runs_with_only_its_imports_changed(tmp_path: Path) -> None:
    prog = ROOT / "tests" / "programs" / "tutorial_verbatim.py"
    out = run_cli(["run", prog, "--db", tmp_path / "t.db", "--model", "offline"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Total Analysts: 8" in out.stdout
    # Without a batch the editor fires once per analysis, as the tutorial's gotcha says.
    assert "NewsDigest 8" in out.stderr


def test_a_database_path_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = run_cli(["run", EXAMPLES / "routing.py", "--db", blocker / "x.db"], cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("flock-es: error: cannot write the database")
    assert len(out.stderr.strip().splitlines()) == 1
