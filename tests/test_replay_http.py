"""Model-free replay: a run recorded against a real HTTP model endpoint replays with the
server stopped and no API key in the environment."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.openai_server import OpenAIServer

PROGRAM = ROOT / "tests" / "programs" / "loopback_program.py"
KEY = "sk-loopback-test-key-123456"  # the agent's api_key in the program


@pytest.mark.slow
def test_run_against_loopback_server_then_replay_without_it(tmp_path: Path) -> None:
    db = tmp_path / "http.db"
    server = OpenAIServer().start()
    try:
        out = run_cli(
            ["run", PROGRAM, "--db", db, "-q"],
            env={"LOOPBACK_URL": server.url},
        )
        assert out.returncode == 0, out.stderr
        assert server.calls == 3
    finally:
        server.stop()
    with socket.socket() as s:  # the endpoint is really gone
        assert s.connect_ex(("127.0.0.1", server.port)) != 0

    replay = run_cli(["replay", "latest", "--db", db, "--json"])  # no key, no server
    assert replay.returncode == 0, replay.stderr
    report = json.loads(replay.stdout)
    assert report["verdict"] == "identical"
    assert report["model_calls"] == 0 and report["served_calls"] == 3

    exported = run_cli(["export", "latest", "--db", db])
    files = [p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(db.name)]
    for blob in (*files, exported.stdout.encode()):
        assert KEY.encode() not in blob and b"sk-loopback" not in blob
