"""The litellm path against a real OpenAI-compatible server on 127.0.0.1.

No mock of litellm: every call is an HTTP request from litellm to the server
that the fixture starts, and every check reads the real SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from flock_es import Flock
from flock_es.log.reader import LogReader
from flock_es.models.litellm_client import import_litellm
from flock_es.models.retry import RetryPolicy
from flock_es.runtime.replay import Replayer
from tests.openai_server import OpenAIServer, Step

KEY = "sk-test-SECRET1234567890abcdef"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.5, timeout=5.0)


class Ticket(BaseModel):
    text: str = Field(min_length=5)


class Triage(BaseModel):
    summary: str
    priority: int = Field(ge=1, le=5)


class Tag(BaseModel):
    label: str


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


def events(db: Path, kind: str | None = None) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    try:
        sql = "SELECT kind, body FROM events ORDER BY seq"
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    out = [dict(json.loads(b), _kind=k) for k, b in rows]
    return [e for e in out if kind is None or e["_kind"] == kind]


def assert_no_key(*paths: Path) -> None:
    for p in paths:
        for f in (p, p.with_name(p.name + "-wal")):
            if f.exists():
                assert KEY.encode() not in f.read_bytes(), f"API key found in {f}"


def triage_flock(
    db: Path, server: OpenAIServer, model: str = "openai/test-model", **kw: Any
) -> Flock:
    flock = Flock(model, db=db, retry=kw.pop("retry", FAST), **kw)
    flock.agent("triage").description("Triage support tickets").consumes(Ticket).publishes(
        Triage
    ).model(model, api_base=server.url, api_key=KEY)
    return flock


async def run_one(flock: Flock, text: str = "The printer is on fire again") -> None:
    await flock.publish(Ticket(text=text))
    await flock.run_until_idle()
    await flock.close()


async def test_valid_answer_is_recorded_with_tokens_and_no_key(
    server: OpenAIServer, db_path: Path
) -> None:
    flock = triage_flock(db_path, server)
    await run_one(flock)
    [called] = events(db_path, "model.called")
    assert called["attempt"] == 1 and called["tokens_in"] > 0 and called["tokens_out"] > 0
    assert called["cost"] is None  # test-model has no price: unknown, not zero
    assert called["request"]["settings"]["api_key"] == "[redacted]"
    assert events(db_path, "model.attempt") == []
    assert len(events(db_path, "task.completed")) == 1
    [out] = [e for e in events(db_path, "artifact.published") if e["type"] == "Triage"]
    assert 1 <= out["payload"]["priority"] <= 5
    # The key did reach the server, and nothing else: not the log, not the WAL.
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"
    assert "response_format" not in server.requests[0]  # unknown model: schema in the prompt
    assert_no_key(db_path)
    totals = flock.state.totals()
    assert totals["calls"] == 1 and totals["cost"] is None


async def test_known_model_gets_json_schema_and_a_price(
    server: OpenAIServer, db_path: Path
) -> None:
    flock = triage_flock(db_path, server, model="openai/gpt-4o-mini")
    await run_one(flock)
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["title"] == "Triage"
    [called] = events(db_path, "model.called")
    price = import_litellm().model_cost["gpt-4o-mini"]
    expected = (
        called["tokens_in"] * price["input_cost_per_token"]
        + called["tokens_out"] * price["output_cost_per_token"]
    )
    assert called["cost"] == pytest.approx(expected)
    agent = flock.state.agents["triage"]
    assert agent.cost == pytest.approx(expected) and agent.tokens_in == called["tokens_in"]


async def test_prices_in_the_settings_price_a_model_litellm_has_none_for(
    server: OpenAIServer, db_path: Path
) -> None:
    # A self-hosted model is in no price table; litellm prices its calls with the
    # prices passed to the call, and that is the cost recorded (it was null).
    flock = Flock("offline", db=db_path, retry=FAST)
    flock.agent("triage").consumes(Ticket).publishes(Triage).model(
        "openai/my-model",
        api_base=server.url,
        api_key=KEY,
        input_cost_per_token=1e-6,
        output_cost_per_token=3e-6,
    )
    await run_one(flock)
    [called] = events(db_path, "model.called")
    expected = called["tokens_in"] * 1e-6 + called["tokens_out"] * 3e-6
    assert called["cost"] == pytest.approx(expected) and expected > 0
    assert flock.state.totals()["cost"] == pytest.approx(expected)


async def test_settings_pass_through(server: OpenAIServer, db_path: Path) -> None:
    flock = Flock("offline", db=db_path, retry=FAST)
    flock.agent("triage").consumes(Ticket).publishes(Triage).model(
        "openai/test-model", api_base=server.url, api_key=KEY, temperature=0.25, max_tokens=77
    )
    await run_one(flock)
    sent = server.requests[0]
    assert sent["temperature"] == 0.25 and sent["max_tokens"] == 77
    assert sent["model"] == "test-model"


async def test_invalid_then_valid_is_re_asked_with_the_error(
    server: OpenAIServer, db_path: Path
) -> None:
    server.script(Step(content='{"summary": "x", "priority": 9}'))
    await run_one(triage_flock(db_path, server))
    called = events(db_path, "model.called")
    assert [c["call_index"] for c in called] == [0, 1]
    [attempt] = events(db_path, "model.attempt")
    assert attempt["outcome"] == "invalid_output" and attempt["will_retry"]
    assert "priority" in attempt["error"]
    retry_msgs = server.requests[1]["messages"]
    assert retry_msgs[-2] == {"role": "assistant", "content": '{"summary": "x", "priority": 9}'}
    assert "did not validate" in retry_msgs[-1]["content"]
    assert len(events(db_path, "task.completed")) == 1


async def test_still_invalid_fails_with_the_raw_answer(server: OpenAIServer, db_path: Path) -> None:
    server.script(*[Step(content="I am not JSON, sorry") for _ in range(3)])
    policy = RetryPolicy(base_delay=0.01, validation_retries=1)
    flock = triage_flock(db_path, server, retry=policy)
    await run_one(flock)
    assert server.calls == 2
    [failed] = events(db_path, "task.failed")
    assert failed["raw"] == "I am not JSON, sorry"
    assert "did not validate after 2 attempt(s)" in failed["error"]
    assert [a["will_retry"] for a in events(db_path, "model.attempt")] == [True, False]


async def test_rate_limit_honours_retry_after(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(status=429, headers={"Retry-After": "0.05"}))
    # A backoff of its own would wait 5 s; the server asked for 0.05 s.
    policy = RetryPolicy(base_delay=5.0, max_delay=10.0, timeout=5.0)
    await run_one(triage_flock(db_path, server, retry=policy))
    [attempt] = events(db_path, "model.attempt")
    assert attempt["outcome"] == "rate_limited" and attempt["status"] == 429
    assert attempt["will_retry"] and 0.05 <= attempt["retry_in"] < 0.1
    [called] = events(db_path, "model.called")
    assert called["attempt"] == 2 and server.calls == 2


async def test_server_error_then_success(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(status=500), Step(status=503))
    await run_one(triage_flock(db_path, server))
    attempts = events(db_path, "model.attempt")
    assert [(a["outcome"], a["status"], a["attempt"]) for a in attempts] == [
        ("server_error", 500, 1),
        ("server_error", 503, 2),
    ]
    # Full jitter: a random wait up to base * 2**(n-1), so retries do not land together.
    assert 0 <= attempts[0]["retry_in"] <= 0.01 and 0 <= attempts[1]["retry_in"] <= 0.02
    assert events(db_path, "model.called")[0]["attempt"] == 3


async def test_retries_are_bounded(server: OpenAIServer, db_path: Path) -> None:
    server.script(*[Step(status=502) for _ in range(5)])
    policy = RetryPolicy(max_attempts=3, base_delay=0.01)
    await run_one(triage_flock(db_path, server, retry=policy))
    assert server.calls == 3
    [failed] = events(db_path, "task.failed")
    assert "HTTP 502" in failed["error"] and "gave up after 3 attempts" in failed["error"]


async def test_slower_than_the_timeout(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(delay=3.0))
    policy = RetryPolicy(base_delay=0.01, timeout=0.3)
    await run_one(triage_flock(db_path, server, retry=policy))
    [attempt] = events(db_path, "model.attempt")
    assert attempt["outcome"] == "timeout" and attempt["will_retry"]
    assert events(db_path, "model.called")[0]["attempt"] == 2
    assert len(events(db_path, "task.completed")) == 1


async def test_connection_refused_is_retried_then_fails(db_path: Path) -> None:
    gone = OpenAIServer().start()
    gone.stop()  # a port nobody listens on any more
    flock = Flock(
        "openai/test-model", db=db_path, retry=RetryPolicy(max_attempts=2, base_delay=0.01)
    )
    flock.agent("triage").consumes(Ticket).publishes(Triage).model(
        "openai/test-model", api_base=gone.url, api_key=KEY
    )
    await run_one(flock)
    attempts = events(db_path, "model.attempt")
    assert [(a["outcome"], a["will_retry"]) for a in attempts] == [
        ("connection", True),
        ("connection", False),
    ]
    [failed] = events(db_path, "task.failed")
    # The endpoint is named, and no HTTP status that never happened is claimed.
    assert f"cannot connect to {gone.url}" in failed["error"] and "HTTP" not in failed["error"]
    assert "gave up after 2 attempts" in failed["error"] and failed["transient"]
    assert [a["status"] for a in attempts] == [None, None]


async def test_unauthorised_is_not_retried_and_says_so(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(status=401, error=f"Incorrect API key provided: {KEY}"))
    flock = triage_flock(db_path, server)
    await run_one(flock)
    assert server.calls == 1
    [attempt] = events(db_path, "model.attempt")
    assert attempt["outcome"] == "auth" and not attempt["will_retry"]
    [failed] = events(db_path, "task.failed")
    assert "authentication failed (HTTP 401)" in failed["error"]
    assert KEY not in failed["error"] and "[redacted]" in failed["error"]
    assert_no_key(db_path)


async def test_bad_request_is_not_retried(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(status=400, error="unsupported parameter"))
    await run_one(triage_flock(db_path, server))
    assert server.calls == 1
    [failed] = events(db_path, "task.failed")
    assert (
        "bad request (HTTP 400)" in failed["error"] and "unsupported parameter" in failed["error"]
    )


async def test_several_published_types_get_one_schema(server: OpenAIServer, db_path: Path) -> None:
    flock = Flock("openai/test-model", db=db_path, retry=FAST)
    flock.agent("both").consumes(Ticket).publishes(Triage, Tag).model(
        "openai/test-model", api_base=server.url, api_key=KEY
    )
    await run_one(flock)
    outs = sorted(e["type"] for e in events(db_path, "artifact.published") if e["task_id"])
    assert outs == ["Tag", "Triage"]


async def test_fan_out_asks_for_a_list_and_checks_its_length(
    server: OpenAIServer, db_path: Path
) -> None:
    server.script(Step(content='{"Tag": [{"label": "only one"}]}'))
    flock = Flock("openai/test-model", db=db_path, retry=FAST)
    flock.agent("tagger").consumes(Ticket).publishes(Tag, fan_out=3).model(
        "openai/test-model", api_base=server.url, api_key=KEY
    )
    await run_one(flock)
    [attempt] = events(db_path, "model.attempt")
    assert "expected a list of exactly 3, got 1 items" in attempt["error"]
    outs = [e for e in events(db_path, "artifact.published") if e["type"] == "Tag"]
    assert len(outs) == 3


# --- tools --------------------------------------------------------------------

CALLS: list[str] = []


def lookup_customer(email: str, include_history: bool = False) -> dict[str, Any]:
    """Find a customer's plan by e-mail address."""
    CALLS.append(email)
    return {"email": email, "plan": "gold", "history": [] if include_history else None}


def tool_flock(db: Path, server: OpenAIServer) -> Flock:
    flock = Flock("openai/test-model", db=db, retry=FAST)
    flock.agent("triage").consumes(Ticket).publishes(Triage).with_tools([lookup_customer]).model(
        "openai/test-model", api_base=server.url, api_key=KEY
    )
    return flock


async def test_tool_call_round_trip_and_replay_without_calling_again(
    server: OpenAIServer, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    CALLS.clear()
    server.script(Step(tool_calls=[{"name": "lookup_customer", "arguments": {"email": "a@b.c"}}]))
    await run_one(tool_flock(db_path, server))
    assert CALLS == ["a@b.c"]
    spec = server.requests[0]["tools"][0]["function"]
    assert spec["name"] == "lookup_customer" and "e-mail" in spec["description"]
    assert spec["parameters"]["required"] == ["email"]
    [tool] = events(db_path, "tool.called")
    assert tool["tool"] == "lookup_customer" and json.loads(tool["result"])["plan"] == "gold"
    assert (tool["call_index"], tool["position"]) == (0, 0)
    second = server.requests[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "lookup_customer"
    assert second[-1]["role"] == "tool" and "gold" in second[-1]["content"]
    assert [c["call_index"] for c in events(db_path, "model.called")] == [0, 1]

    # Replay: no server, no key, the tool is not run again.
    server.stop()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LogReader(db_path) as reader:
        run_id = reader.resolve_run("latest")
        recorded = list(reader.events(run_id))
    report = await Replayer(recorded, tool_flock(db_path, server).agents).run()
    assert report.identical, report.divergence
    assert report.model_calls == 0 and CALLS == ["a@b.c"]


async def test_a_failing_tool_is_reported_to_the_model(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(tool_calls=[{"name": "lookup_customer", "arguments": {"mail": 1}}]))
    await run_one(tool_flock(db_path, server))
    [tool] = events(db_path, "tool.called")
    assert tool["error"].startswith("bad arguments for lookup_customer")
    assert server.requests[1]["messages"][-1]["content"].startswith("error: bad arguments")
    assert len(events(db_path, "task.completed")) == 1


# --- concurrency ----------------------------------------------------------------


def fan_out(db: Path, server: OpenAIServer, n: int, **kw: Any) -> Flock:
    flock = Flock("openai/test-model", db=db, retry=FAST, **kw)
    for i in range(n):
        flock.agent(f"a{i}").consumes(Ticket).publishes(Tag).model(
            "openai/test-model", api_base=server.url, api_key=KEY
        )
    return flock


async def test_calls_really_overlap(server: OpenAIServer, db_path: Path) -> None:
    server.latency = 0.3
    await run_one(fan_out(db_path, server, 8))
    assert server.calls == 8 and server.max_inflight == 8


async def test_global_cap_limits_calls_in_flight(server: OpenAIServer, db_path: Path) -> None:
    server.latency = 0.1
    await run_one(fan_out(db_path, server, 6, max_concurrent_calls=2))
    assert server.calls == 6 and server.max_inflight == 2


async def test_per_agent_max_concurrency(server: OpenAIServer, db_path: Path) -> None:
    server.latency = 0.1
    flock = Flock("openai/test-model", db=db_path, retry=FAST)
    flock.agent("solo").consumes(Ticket).publishes(Tag).max_concurrency(1).model(
        "openai/test-model", api_base=server.url, api_key=KEY
    )
    await flock.publish_many([Ticket(text=f"ticket number {i}") for i in range(4)])
    await flock.run_until_idle()
    await flock.close()
    assert server.calls == 4 and server.max_inflight == 1


# --- resume -------------------------------------------------------------------


async def test_record_only_engine_serves_the_whole_conversation(
    server: OpenAIServer, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorded run (a validation retry and a tool call in it) re-executes from the log."""
    CALLS.clear()
    server.script(
        Step(tool_calls=[{"name": "lookup_customer", "arguments": {"email": "x@y.z"}}]),
        Step(content="{}"),
    )
    await run_one(tool_flock(db_path, server))
    assert len(events(db_path, "model.called")) == 3
    server.stop()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LogReader(db_path) as reader:
        run_id = reader.resolve_run("latest")
        recorded = list(reader.events(run_id))
    report = await Replayer(recorded, tool_flock(db_path, server).agents).run()
    assert report.identical, report.divergence
    assert report.served_calls == 3 and report.model_calls == 0 and CALLS == ["x@y.z"]


# --- pieces -------------------------------------------------------------------


def test_retry_after_forms() -> None:
    from flock_es.models.retry import parse_retry_after

    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after(None) is None


def leaky_tool(query: str) -> str:
    """Look something up (and, carelessly, echo a credential)."""
    import os

    return f"{query}: found, using {os.environ['SOME_SERVICE_TOKEN']}"


async def test_a_key_echoed_by_the_server_or_a_tool_never_reaches_the_log(
    server: OpenAIServer, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "ghp_OTHERSECRETTOKEN0123456789"
    monkeypatch.setenv("SOME_SERVICE_TOKEN", other)
    server.script(
        Step(tool_calls=[{"name": "leaky_tool", "arguments": {"query": "plan"}}]),
        Step(content=json.dumps({"summary": f"you sent Bearer {KEY}", "priority": 2})),
    )
    flock = Flock("openai/test-model", db=db_path, retry=FAST)
    flock.agent("triage").consumes(Ticket).publishes(Triage).with_tools([leaky_tool]).model(
        "openai/test-model", api_base=server.url, api_key=KEY
    )
    await run_one(flock)
    [out] = [e for e in events(db_path, "artifact.published") if e["type"] == "Triage"]
    assert out["payload"]["summary"] == "you sent Bearer [redacted]"
    assert "[redacted]" in events(db_path, "tool.called")[0]["result"]
    assert other not in json.dumps(server.requests[1])  # nor does the model hear it
    for f in (db_path, db_path.with_name(db_path.name + "-wal")):
        if f.exists():
            raw = f.read_bytes()
            assert KEY.encode() not in raw and other.encode() not in raw
