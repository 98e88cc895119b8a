"""Resume checks every recorded call against the program as it is now (issue 9).

A run is killed with a model call and a tool call recorded for its task; its
agent's description (part of the prompt) is then edited. ``flock-es resume``
must refuse before any work, with one line naming the agent, the task and
what changed, and suggest ``flock-es fork``; the unchanged program resumes as
before. Real CLI subprocesses, a real SIGKILL, the loopback OpenAI server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, event_kinds, kill_cli_when, run_cli
from tests.openai_server import OpenAIServer, Step

KEY = "sk-test-SECRET1234567890abcdef"
ORIGINAL = 'description("Charges orders")'
EDITED = 'description("Charges orders, politely")'


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = OpenAIServer(latency=0.0).start()
    yield srv
    srv.stop()


def killed_with_calls_recorded(server: OpenAIServer, tmp_path: Path, env: dict[str, str]) -> Path:
    """Run the tool program until its second model call is in flight, then SIGKILL it."""
    program = tmp_path / "cashier.py"
    program.write_text((ROOT / "tests" / "programs" / "litellm_tool_program.py").read_text())
    assert ORIGINAL in program.read_text()
    server.script(
        Step(tool_calls=[{"name": "charge_card", "arguments": {"item": "teapot", "amount": 42}}]),
        Step(delay=60.0),  # the second answer never comes: the process is killed first
    )
    db = tmp_path / "run.db"
    args = ["run", program, "-m", "openai/test-model", "--db", db, "-q"]
    reached = kill_cli_when(args, lambda: server.calls >= 2, tmp_path, env)
    assert reached and server.calls == 2, "the run never reached its second model call"
    assert event_kinds(db).count("model.called") == 1 and "task.completed" not in event_kinds(db)
    return db


@pytest.mark.slow
def test_resume_refuses_a_changed_prompt_then_resumes_the_unchanged_program(
    server: OpenAIServer, tmp_path: Path
) -> None:
    log = tmp_path / "charges.txt"
    env = {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": KEY, "TOOL_LOG": str(log)}
    db = killed_with_calls_recorded(server, tmp_path, env)
    program = tmp_path / "cashier.py"
    before = event_kinds(db)

    program.write_text(program.read_text().replace(ORIGINAL, EDITED))
    out = run_cli(["resume", "latest", "--db", db, "-q"], cwd=tmp_path, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and "warning" not in ln]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    line = lines[0]
    assert line.startswith("flock-es: error: cannot resume run ")
    assert "agent 'cashier'" in line and "task " in line and "system message" in line
    assert "flock-es fork " in line
    assert event_kinds(db) == before  # nothing recorded, nothing run
    assert server.calls == 2 and log.read_text() == "teapot 42\n"  # nothing paid or charged

    program.write_text(program.read_text().replace(EDITED, ORIGINAL))
    out = run_cli(["resume", "latest", "--db", db, "-q"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert server.calls == 3  # only the missing answer was asked for
    assert log.read_text() == "teapot 42\n"  # the recorded tool call was served
    after = event_kinds(db)
    assert after.count("model.called") == 2 and after.count("task.completed") == 1
