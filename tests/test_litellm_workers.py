"""litellm's import (seconds of CPU) where model calls are made, and only there.

A shared run that only publishes (``flock-es run --no-execute``) makes no model
call: its workers do. Importing litellm there took that CPU from the workers
starting beside it (3 workers and the run on 2 cores: the first request 16.5 s
after they started, 13.5 s without the run's import). A worker whose model is a
litellm one starts the import as it starts, not once it has joined its first run.

Real processes (``python -X importtime`` through ``PYTHONPROFILEIMPORTTIME``),
a real loopback OpenAI-compatible server, a SQLite log they share.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.openai_server import OpenAIServer
from tests.test_workers import workers

SWARM = ROOT / "tests" / "programs" / "swarm_program.py"
MODEL = "openai/test-model"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = OpenAIServer(latency=0.05).start()
    yield srv
    srv.stop()


def imported(log: str, module: str) -> bool:
    """Whether ``-X importtime`` output ``log`` shows ``module`` (or a submodule) imported."""
    return any(
        line.startswith("import time:") and line.rsplit("|", 1)[-1].strip().split(".")[0] == module
        for line in log.splitlines()
    )


@pytest.mark.slow  # two processes that import litellm and run 8 calls: about 20 s
@pytest.mark.timeout(180)
def test_a_run_that_only_publishes_leaves_litellm_to_its_workers(
    server: OpenAIServer, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    env = {
        "OPENAI_API_BASE": server.url,
        "OPENAI_API_KEY": "sk-test-key",
        "SWARM_N": "4",
        "SWARM_TICKETS": "2",
        "PYTHONPROFILEIMPORTTIME": "1",
    }
    with workers(SWARM, str(db), 1, tmp_path, "-m", MODEL, env=env):
        log = tmp_path / "worker0.log"
        deadline = time.monotonic() + 60
        while not imported(log.read_text(), "litellm"):  # before any run exists
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        assert "joined run" not in log.read_text()
        out = run_cli(
            ["run", SWARM, "--db", db, "-m", MODEL, "--no-execute", "-q"], env=env, timeout=120
        )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "8 done" in out.stderr  # the summary
    assert server.completed == 8
    assert imported(out.stderr, "flock_es")  # the probe sees the run's imports
    assert not imported(out.stderr, "litellm")
