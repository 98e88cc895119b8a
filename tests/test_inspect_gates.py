"""``flock-es show`` and ``runs`` on what gates, joins, the circuit breaker, visibility,
retries and tools leave behind: real runs on a real SQLite file, read by the real CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flock_es import AfterVisibility, Flock, JoinSpec, flock_type
from flock_es.models.retry import RetryPolicy
from tests.conftest import run_cli
from tests.openai_server import OpenAIServer, Step

KEY = "sk-inspect-SECRET-0123456789abcdef"


@flock_type
class Lhs(BaseModel):
    key: str


@flock_type
class Rhs(BaseModel):
    key: str


@flock_type
class Tick(BaseModel):
    n: int


@flock_type
class Notice(BaseModel):
    text: str


@flock_type
class Pair(BaseModel):
    keys: list[str]


@flock_type
class Ask(BaseModel):
    question: str


@flock_type
class Reply(BaseModel):
    answer: str


def show(db: Path, *extra: str) -> tuple[dict[str, Any], str]:
    js = run_cli(["show", "latest", "--db", db, "--json", *extra])
    assert js.returncode == 0, js.stderr
    text = run_cli(["show", "latest", "--db", db, *extra])
    assert text.returncode == 0, text.stderr
    assert "Traceback" not in text.stderr
    return json.loads(js.stdout), text.stdout


@pytest.mark.slow
async def test_show_lists_waiting_and_expired_joins_trips_and_embargoed_artifacts(
    db_path: Path,
) -> None:
    flock = Flock(db=db_path, max_agent_iterations=3)
    # A count window of 2 arrivals: a group older than that expires on the next arrival.
    flock.agent("joiner").consumes(
        Lhs, Rhs, join=JoinSpec(by=lambda x: x.key, within=2)
    ).with_function(lambda items: Pair(keys=[i.key for i in items])).publishes(Pair)
    flock.agent("ticker").consumes(Tick).with_function(lambda t: Tick(n=t.n + 1)).publishes(
        Tick
    ).prevent_self_trigger(False)
    flock.agent("reader").consumes(Notice).with_function(lambda n: None)
    await flock.publish(Lhs(key="k1"))
    await flock.publish(Lhs(key="k2"))
    await flock.publish(Rhs(key="k1"))  # completes k1
    await flock.publish(Lhs(key="k3"))
    await flock.publish(Lhs(key="k4"))  # k2 is now 3 arrivals old: expired
    await flock.publish(Tick(n=0))
    await flock.run_until_idle()
    # Closed before the ttl passes: the notice is recorded but never released.
    await flock.publish(Notice(text="later"), visibility=AfterVisibility(ttl=3600))
    await flock.close()

    data, text = show(db_path)
    gates = data["gates"]
    assert isinstance(gates, list)
    assert [(g["agent"], g["key"], g["missing"]) for g in gates] == [
        ("joiner", "k3", {"Rhs": 1}),
        ("joiner", "k4", {"Rhs": 1}),
    ]
    assert gates[0]["need"] == {"Lhs": 1, "Rhs": 1} and len(gates[0]["members"]["Lhs"]) == 1
    [expired] = data["expired_joins"]
    assert (expired["agent"], expired["key"], expired["reason"]) == ("joiner", "k2", "count")
    assert len(expired["members"]) == 1 and expired["seq"] > 0
    [trip] = data["circuit_trips"]
    assert (trip["agent"], trip["limit"]) == ("ticker", 3) and len(trip["inputs"]) == 1
    assert data["tripped"] == {"ticker": 1}
    [hidden] = data["unreleased"]
    assert hidden["type"] == "Notice" and hidden["then"] == "public" and hidden["due"] > 0
    assert data["model_attempts"] == [] and data["tool_calls"] == []

    assert "Waiting gates\n  joiner [k3]: Lhs 1/1, Rhs 0/1 · waiting for 1 Rhs\n" in text
    assert "Expired joins\n  joiner [k2]: window passed (count) at seq" in text
    assert "Circuit breaker\n  ticker: tripped 1× (limit 3 runs)\n" in text
    assert f"Not yet visible (AfterVisibility)\n  Notice {hidden['id']}: released as public" in text
    # Sections with nothing to say are left out.
    assert "Model call retries" not in text and "Tool calls" not in text

    # Right after the k2 group expired, k1 has fired and k3 waits; no trip yet.
    seq = int(expired["seq"])
    early, early_text = show(db_path, "--at", str(seq))
    assert [g["key"] for g in early["gates"]] == ["k3"]
    assert early["circuit_trips"] == [] and early["unreleased"] == []
    assert "Circuit breaker" not in early_text and "Not yet visible" not in early_text


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.mark.slow
async def test_show_and_runs_report_retried_model_calls_and_tool_calls(
    db_path: Path, server: OpenAIServer
) -> None:
    server.script(
        Step(status=500),  # the first attempt fails, the retry is answered
        Step(tool_calls=[{"name": "weather", "arguments": {"city": "Oslo"}}]),
    )
    model = "openai/test-model"
    flock = Flock(model, db=db_path, retry=RetryPolicy(base_delay=0.01, max_delay=0.1, timeout=5))
    flock.agent("forecaster").consumes(Ask).publishes(Reply).with_tools([weather]).model(
        model, api_base=server.url, api_key=KEY
    )
    await flock.publish(Ask(question="Weather in Oslo?"))
    await flock.run_until_idle()
    await flock.close()

    data, text = show(db_path)
    [failed] = data["model_attempts"]
    assert (failed["agent"], failed["call_index"], failed["attempt"]) == ("forecaster", 0, 1)
    assert failed["outcome"] == "server_error" and failed["status"] == 500
    assert failed["will_retry"] is True
    assert [(c["agent"], c["call_index"], c["attempt"]) for c in data["retried_calls"]] == [
        ("forecaster", 0, 2)
    ]
    [tool] = data["tool_calls"]
    assert (tool["agent"], tool["tool"], tool["call_index"], tool["position"]) == (
        "forecaster",
        "weather",
        0,
        0,
    )
    assert json.loads(tool["arguments"]) == {"city": "Oslo"} and "sunny in Oslo" in tool["result"]
    assert data["totals"]["calls"] == 2

    task = tool["task_id"]
    assert "Model call retries (1 failed attempt)" in text
    assert f"  forecaster {task} call 0 attempt 1: server_error HTTP 500" in text
    assert f"  forecaster {task} call 0: answered on attempt 2" in text
    assert "Tool calls (1)\n" in text
    assert f'  forecaster {task} call 0: weather({{"city": "Oslo"}}) -> ' in text
    assert "sunny in Oslo" in text
    assert KEY not in text and KEY not in json.dumps(data)

    runs = run_cli(["runs", "--db", db_path, "--json"])
    assert runs.returncode == 0, runs.stderr
    [row] = json.loads(runs.stdout)
    assert row["failed_attempts"] == 1 and row["retried_calls"] == 1 and row["model_calls"] == 2
    table = run_cli(["runs", "--db", db_path])
    assert table.returncode == 0 and "failed att." in table.stdout
