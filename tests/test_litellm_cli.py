"""The litellm path through the real CLI: ``flock-es run`` against a loopback server.

The server runs in this process (a thread); the CLI runs in a subprocess and
finds it through ``OPENAI_API_BASE``, as a user pointing flock-es at any
OpenAI-compatible server would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, event_kinds, kill_cli_when, run_cli
from tests.openai_server import OpenAIServer, Step

KEY = "sk-test-SECRET1234567890abcdef"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = OpenAIServer(latency=0.2).start()
    yield srv
    srv.stop()


def one_line_error(out: object) -> str:
    stderr = str(getattr(out, "stderr", ""))
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("flock-es: error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.slow
def test_missing_key_fails_before_any_work(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    out = run_cli(["run", EXAMPLES / "news.py", "-m", "openai/gpt-4.1", "--db", db], cwd=tmp_path)
    assert out.returncode == 2
    assert "OPENAI_API_KEY" in one_line_error(out)
    assert not db.exists() and "News Agency" not in out.stdout


@pytest.mark.slow
def test_misspelled_provider_fails_before_any_work(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    out = run_cli(["run", EXAMPLES / "news.py", "-m", "notaprovider/x", "--db", db], cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown model provider in 'notaprovider/x'" in one_line_error(out)
    assert not db.exists() and out.stdout == ""


@pytest.mark.slow
def test_news_against_the_server_then_export_and_replay_without_it(
    server: OpenAIServer, tmp_path: Path
) -> None:
    db = tmp_path / "news.db"
    env = {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": KEY}
    out = run_cli(
        ["run", EXAMPLES / "news.py", "-m", "openai/test-model", "--db", db], cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "NewsAnalysis 8" in out.stderr and "NewsDigest 1" in out.stderr  # the summary
    assert "9 calls" in out.stderr and "cost unknown" in out.stderr
    assert "editor" in out.stderr  # per-agent ledger lines
    # The eight analysts were in flight at once: the calls overlap, not queue.
    assert server.calls == 9 and server.max_inflight == 8
    assert all(h["authorization"] == f"Bearer {KEY}" for h in server.headers)

    export = tmp_path / "run.jsonl"
    assert run_cli(["export", "latest", "--db", db, "-o", export], env=env).returncode == 0
    kinds = [json.loads(line).get("kind") for line in export.read_text().splitlines()]
    assert kinds.count("model.called") == 9
    runs = run_cli(["runs", "--db", db], env=env)
    assert runs.returncode == 0 and "unknown" in runs.stdout

    for text in (out.stdout, out.stderr, runs.stdout):
        assert KEY not in text
    for f in (db, db.with_name(db.name + "-wal"), export):
        if f.exists():
            assert KEY.encode() not in f.read_bytes(), f

    # The server is gone and so is the key: the replay serves every answer from the log.
    server.stop()
    rep = run_cli(["replay", "latest", "--db", db, "--no-timeline"], cwd=tmp_path)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "identical" in rep.stdout


@pytest.mark.slow
def test_resume_after_sigkill_does_not_run_a_tool_twice(
    server: OpenAIServer, tmp_path: Path
) -> None:
    """Killed after the tool ran and before the model answered: resume pays only what is missing."""
    db = tmp_path / "tool.db"
    log = tmp_path / "charges.txt"
    env = {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": KEY, "TOOL_LOG": str(log)}
    server.latency = 0.0
    server.script(
        Step(tool_calls=[{"name": "charge_card", "arguments": {"item": "teapot", "amount": 42}}]),
        Step(delay=60.0),  # the answer after the tool never comes: the process is killed
    )
    program = ROOT / "tests" / "programs" / "litellm_tool_program.py"
    args = ["run", program, "-m", "openai/test-model", "--db", db, "-q"]
    reached = kill_cli_when(args, lambda: server.calls >= 2, tmp_path, env)
    assert reached and server.calls == 2, "the run never reached its second model call"
    assert log.read_text() == "teapot 42\n"
    kinds = event_kinds(db)
    assert kinds.count("tool.called") == 1 and "task.completed" not in kinds

    out = run_cli(["resume", "latest", "--db", db, "-q"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert log.read_text() == "teapot 42\n"  # served from the log, not charged again
    assert server.calls == 3  # only the missing answer was asked for
    resumed = server.requests[2]["messages"]
    assert resumed[-1]["role"] == "tool" and "charged 42" in resumed[-1]["content"]
    kinds = event_kinds(db)
    assert kinds.count("tool.called") == 1 and kinds.count("task.completed") == 1
    assert kinds.count("model.called") == 2


@pytest.mark.slow
def test_cli_cap_on_calls_in_flight(server: OpenAIServer, tmp_path: Path) -> None:
    db = tmp_path / "cap.db"
    env = {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": KEY}
    args: list[str | Path] = [
        "run",
        EXAMPLES / "news.py",
        "-m",
        "openai/test-model",
        "--db",
        db,
        "-q",
    ]
    out = run_cli([*args, "--max-concurrent-calls", "3"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert server.calls == 9 and server.max_inflight == 3


@pytest.mark.slow
def test_resume_keeps_the_run_s_cap_on_calls_in_flight(
    server: OpenAIServer, tmp_path: Path
) -> None:
    """A resume went on with no cap: a run started with ``--max-concurrent-calls 5``
    and killed sent 366 calls at once to a provider when resumed. The cap is
    recorded in ``run.started``; ``resume --max-concurrent-calls`` sets another."""
    db = tmp_path / "cap.db"
    env = {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": KEY}
    args = ["run", EXAMPLES / "news.py", "-m", "openai/test-model", "--db", db, "-q"]
    assert kill_cli_when([*args, "--max-concurrent-calls", "2"], lambda: server.calls >= 1, env=env)
    server.max_inflight = 0
    out = run_cli(["resume", "latest", "--db", db, "-q"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    # At most the run's cap (8 analysts wanting a call at once took 8 without it).
    assert 1 <= server.max_inflight <= 2 and event_kinds(db).count("model.called") == 9
    bad = run_cli(["resume", "latest", "--db", db, "--max-concurrent-calls", "0"], env=env)
    assert bad.returncode == 2 and "--max-concurrent-calls" in one_line_error(bad)
