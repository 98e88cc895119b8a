"""Model-free replay: a run recorded against a real HTTP model endpoint replays with the
server stopped and no API key in the environment; a run whose calls the provider
refused for good (HTTP 400, 401, 404) replays identical too, without asking anyone."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flock_es import Flock
from flock_es.errors import PermanentModelError, TransientModelError
from flock_es.log.reader import LogReader
from flock_es.models.base import ModelRequest, ModelResponse
from flock_es.models.offline import OfflineModel
from flock_es.models.retry import RetryPolicy
from flock_es.runtime.replay import Replayer
from tests.conftest import ROOT, run_cli
from tests.openai_server import OpenAIServer, Step

PROGRAM = ROOT / "tests" / "programs" / "loopback_program.py"
REFUSED = ROOT / "tests" / "programs" / "refused_program.py"
KEY = "sk-loopback-test-key-123456"  # the agent's api_key in the program
# What the provider's refusal is recorded as: model.attempt's outcome, for each status.
REFUSALS = [(400, "bad_request"), (401, "auth"), (404, "not_found")]


def bodies(db: Path, kind: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    try:
        found = con.execute("SELECT body FROM events WHERE kind = ? ORDER BY seq", (kind,))
        return [json.loads(b) for (b,) in found]
    finally:
        con.close()


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


@pytest.mark.slow  # 6 s a status: each run imports litellm
@pytest.mark.parametrize(("status", "outcome"), REFUSALS)
def test_a_run_the_provider_refused_replays_identical_without_a_request(
    tmp_path: Path, status: int, outcome: str
) -> None:
    """The summarizer's six calls get a 400 (401, 404): never retried, each task fails
    with ``PermanentModelError``. Replay serves those recorded failures as it serves
    answers: the tasks fail the same way, and the server, still up, hears nothing."""
    db = tmp_path / "refused.db"
    server = OpenAIServer().start()
    try:
        server.script(*[Step(status=status, error="refused") for _ in range(6)])
        env = {"LOOPBACK_URL": server.url}
        out = run_cli(["run", REFUSED, "--db", db, "-q"], env=env)
        assert out.returncode == 1, out.stdout + out.stderr  # the run failed
        assert server.calls == 6
        attempts = bodies(db, "model.attempt")
        assert [(a["outcome"], a["status"], a["will_retry"]) for a in attempts] == [
            (outcome, status, False)
        ] * 6
        failed = bodies(db, "task.failed")
        assert len(failed) == 6 and len(bodies(db, "task.completed")) == 6  # the checker's
        assert {(f["agent"], f["error_type"], f["transient"]) for f in failed} == {
            ("summarizer", "PermanentModelError", False)
        }

        replay = run_cli(["replay", "latest", "--db", db, "--json"], env=env)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        report = json.loads(replay.stdout)
        assert report["verdict"] == "identical", report["divergence"]
        assert report["tasks_replayed"] == 12 and report["model_calls"] == 0
        text = run_cli(["replay", "latest", "--db", db, "--no-timeline"], env=env)
        assert text.returncode == 0 and "identical" in text.stdout, text.stdout + text.stderr

        # A task that failed for good is finished: resume re-runs (and re-asks) nothing,
        # with --retry-failed too (only failures that may pass are retried).
        for extra in ([], ["--retry-failed"]):
            resumed = run_cli(["resume", "latest", "--db", db, *extra], env=env)
            assert resumed.returncode == 0, resumed.stdout + resumed.stderr
            assert "nothing to resume" in resumed.stdout
        assert server.calls == 6  # nothing asked the server again
    finally:
        server.stop()


class Item(BaseModel):
    n: int


class Summary(BaseModel):
    text: str


class Checked(BaseModel):
    n: int


class Refusing:
    """An in-process provider: the first call for an odd item gets a 503 (retried); the
    calls for items 0 to 2 are then refused for good with ``status``, the others answered."""

    name = "refusing"

    def __init__(self, status: int, outcome: str) -> None:
        self.status, self.outcome = status, outcome
        self.calls = 0
        self.busy: set[int] = set()

    def check(self) -> None:
        return None

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        n = int(request.inputs[0]["payload"]["n"])
        if n % 2 and n not in self.busy:
            self.busy.add(n)
            raise TransientModelError("busy (HTTP 503)", "server_error", 503)
        if n < 3:
            raise PermanentModelError(f"refused (HTTP {self.status})", self.outcome, self.status)
        return await OfflineModel().complete(request)


def refusing_flock(db: Path, client: Refusing) -> Flock:
    flock = Flock("refusing", db=db, retry=RetryPolicy(base_delay=0.001, max_delay=0.01))
    flock.clients.register("refusing", client)
    flock.agent("summarizer").description("Summarize").consumes(Item).publishes(Summary)
    flock.agent("checker").consumes(Item).publishes(Checked).with_function(lambda i: Checked(n=i.n))
    return flock


@pytest.mark.parametrize(("status", "outcome"), REFUSALS)
async def test_recorded_refusals_are_served_as_failures(
    db_path: Path, status: int, outcome: str
) -> None:
    """Replay, in process: the refused calls (some after a retried 503) fail again with
    the recorded error, the answered ones are served, and no client is asked."""
    client = Refusing(status, outcome)
    flock = refusing_flock(db_path, client)
    await flock.publish_many(Item(n=n) for n in range(6))
    await flock.run_until_idle()
    await flock.close()
    with LogReader(db_path) as reader:
        recorded = list(reader.events(reader.resolve_run("latest")))
    failed = [e.body for e in recorded if e.kind.value == "task.failed"]
    assert len(failed) == 3 and {f["error_type"] for f in failed} == {"PermanentModelError"}
    asked = client.calls

    report = await Replayer(recorded, refusing_flock(db_path, client).agents).run()
    assert report.identical, report.divergence
    assert report.model_calls == 0 and client.calls == asked
    assert report.tasks_replayed == 12 and report.served_calls == 3  # items 3 to 5
