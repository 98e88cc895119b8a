"""Exact redaction through the real CLI: held secrets never recorded, user data never altered."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from flock_es.redaction import (
    redact_provider_error,
    redact_settings,
    redact_text,
    register_settings,
)
from tests.conftest import ROOT, run_cli
from tests.openai_server import OpenAIServer, Step

PROGRAM = ROOT / "tests" / "programs" / "secrets_program.py"
K_ENV = "sk-envFAKEKEY0123456789abcdef"
K_SETTING = "sk-settingFAKEKEY0123456789ab"
K_HEADER = "hdrFAKEKEY0123456789abcdefgh"
K_URL = "urlFAKEPASS0123456789abcdefg"
KEYS = (K_ENV, K_SETTING, K_HEADER, K_URL)
TRICKY = "risk-assessment of the disk-encryption plan; sk-learn; Bearer authentication"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


def env_for(server: OpenAIServer, agents: str) -> dict[str, str]:
    return {
        "SERVER": server.url,
        "OPENAI_API_KEY": K_ENV,
        "K_SETTING": K_SETTING,
        "K_HEADER": K_HEADER,
        "K_URL": K_URL,
        "AGENTS": agents,
    }


def outputs(db: Path) -> list[dict[str, object]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT body FROM events WHERE kind = 'artifact.published'").fetchall()
    finally:
        con.close()
    return [b for b in (json.loads(r[0]) for r in rows) if b.get("type") == "Triage"]


def assert_nowhere(texts: list[str], files: list[Path]) -> None:
    for key in KEYS:
        for text in texts:
            assert key not in text
        for f in files:
            if f.exists():
                assert key.encode() not in f.read_bytes(), f"{key} in {f}"


@pytest.mark.slow  # 5 s: the CLI's run imports litellm; tests/test_litellm.py stays quick
def test_user_data_and_model_output_are_stored_byte_for_byte(
    server: OpenAIServer, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    answer = json.dumps({"summary": TRICKY, "priority": 2})
    server.script(Step(content=answer))
    out = run_cli(["run", PROGRAM, "--db", db, "-q"], cwd=tmp_path, env=env_for(server, "env"))
    assert out.returncode == 0, out.stderr
    [triage] = outputs(db)
    assert triage["payload"] == {"summary": TRICKY, "priority": 2}
    assert TRICKY.encode() in db.read_bytes()


@pytest.mark.slow  # 4 s
def test_no_held_secret_is_recorded_or_shown_even_when_echoed(
    server: OpenAIServer, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    # Every agent's first call fails with an error body that echoes the request headers.
    server.script(*[Step(status=500, echo=True) for _ in range(3)])
    env = env_for(server, "env,setting,header")
    out = run_cli(["run", PROGRAM, "--db", db], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert len(outputs(db)) == 3
    # The credentials did reach the server, each the way it was given.
    sent = [
        h.get("authorization", "") + " " + h.get("ocp-apim-subscription-key", "")
        for h in server.headers
    ]
    assert any(K_ENV in s for s in sent) and any(K_SETTING in s for s in sent)
    assert any(K_HEADER in s for s in sent)
    export = tmp_path / "run.jsonl"
    exp = run_cli(["export", "latest", "--db", db, "-o", export], env=env)
    show = run_cli(["show", "latest", "--db", db, "--json"], env=env)
    assert exp.returncode == 0 and show.returncode == 0, exp.stderr + show.stderr
    assert "[redacted]" in show.stdout  # the echoed error was recorded, redacted
    texts = [out.stdout, out.stderr, exp.stdout, exp.stderr, show.stdout, show.stderr]
    assert_nowhere(texts, [db, db.with_name("s.db-wal"), export])


def test_url_credentials_are_refused_before_any_work(server: OpenAIServer, tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    out = run_cli(["run", PROGRAM, "--db", db], cwd=tmp_path, env=env_for(server, "url"))
    assert out.returncode == 2, out.stdout + out.stderr
    [line] = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert line.startswith("flock-es: error:") and "credentials" in line and "api_base" in line
    assert server.calls == 0 and not db.exists()
    assert_nowhere([out.stdout, out.stderr], [])


def test_url_credentials_in_the_env_api_base_are_refused(
    server: OpenAIServer, tmp_path: Path
) -> None:
    # OPENAI_API_BASE, not api_base=: once stripped, the URL failed as "not a valid URL".
    db = tmp_path / "e.db"
    base = server.url.replace("http://", f"http://user:{K_URL}@")
    env = {"OPENAI_API_BASE": base, "OPENAI_API_KEY": K_ENV, "SWARM_N": "1"}
    swarm = ROOT / "tests" / "programs" / "swarm_program.py"
    out = run_cli(["run", swarm, "-m", "openai/test-model", "--db", db], cwd=tmp_path, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    [line] = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert line.startswith("flock-es: error:") and "credentials" in line and "api_base" in line
    assert server.calls == 0 and not db.exists()
    assert_nowhere([out.stdout, out.stderr], [])


def test_redaction_is_exact() -> None:
    register_settings({"api_key": "short1", "extra_headers": {"X-Sub": "exact-header-value-1"}})
    assert redact_text(TRICKY) == TRICKY
    assert redact_text("a exact-header-value-1 b") == "a [redacted] b"
    # Too short to replace inside free text, but never recorded as a setting.
    assert redact_text("short1") == "short1"
    assert redact_settings({"api_key": "short1", "extra_headers": {"X-Sub": "v"}}) == {
        "api_key": "[redacted]",
        "extra_headers": {"X-Sub": "[redacted]"},
    }
    assert redact_settings({"api_base": "http://u:pw@h:1/v1"})["api_base"] == (
        "http://[redacted]@h:1/v1"
    )
    # Provider error texts only: a credential-shaped token with a digit, anchored.
    provider = "Incorrect API key provided: sk-proj-abcDEF1234567890xyz. risk-assessment, sk-learn"
    assert redact_provider_error(provider) == (
        "Incorrect API key provided: [redacted]. risk-assessment, sk-learn"
    )
    assert redact_provider_error(TRICKY) == TRICKY


def test_offline_latency_typo_is_one_line(tmp_path: Path) -> None:
    out = run_cli(
        ["run", ROOT / "examples" / "news.py", "--db", tmp_path / "o.db"],
        cwd=tmp_path,
        env={"FLOCK_ES_OFFLINE_LATENCY": "abc"},
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "flock-es: error: FLOCK_ES_OFFLINE_LATENCY must be a number of seconds, got 'abc'"
    )


def test_missing_key_hint_is_true_for_an_agent_with_its_own_model(tmp_path: Path) -> None:
    program = tmp_path / "own_model.py"
    program.write_text(
        "from pydantic import BaseModel\n"
        "from flock_es import Flock, flock_type\n"
        "@flock_type\nclass Q(BaseModel):\n    text: str\n"
        "@flock_type\nclass A(BaseModel):\n    text: str\n"
        "flock = Flock()\n"
        "flock.agent('writer').consumes(Q).publishes(A).model('anthropic/claude-sonnet-4-5')\n"
        "async def main() -> None:\n    await flock.publish(Q(text='hi'))\n"
    )
    out = run_cli(["run", program, "--db", tmp_path / "h.db", "-m", "offline"], cwd=tmp_path)
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert "ANTHROPIC_API_KEY" in line and "--model does not change it" in line
    assert "run with --model offline" not in line


def test_an_api_base_that_is_not_a_url_fails_before_any_work(tmp_path: Path) -> None:
    program = ROOT / "tests" / "programs" / "swarm_program.py"
    out = run_cli(
        ["run", program, "-m", "openai/test-model", "--db", tmp_path / "u.db"],
        cwd=tmp_path,
        env={"OPENAI_API_BASE": "http://127.0.0.1:Error/v1", "OPENAI_API_KEY": K_ENV},
    )
    assert out.returncode == 2 and not (tmp_path / "u.db").exists()
    [line] = out.stderr.strip().splitlines()
    assert "is not a valid URL" in line and K_ENV not in line
