"""Answers as real models send them, and unexpected response shapes, against the loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from flock_es import Flock
from flock_es.models.prompt import parse_output
from flock_es.models.retry import RetryPolicy
from tests.openai_server import OpenAIServer, Step
from tests.test_litellm import events

KEY = "sk-test-SHAPES1234567890abcdef"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.2, timeout=5.0)
GOOD = {"summary": "printer on fire", "priority": 2}


class Ticket(BaseModel):
    text: str = Field(min_length=5)


class Triage(BaseModel):
    summary: str
    priority: int = Field(ge=1, le=5)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


async def run_triage(server: OpenAIServer, db: Path, **settings: Any) -> Flock:
    flock = Flock("openai/test-model", db=db, retry=settings.pop("retry", FAST))
    flock.agent("triage").consumes(Ticket).publishes(Triage).model(
        "openai/test-model", api_base=server.url, api_key=KEY, **settings
    )
    await flock.publish(Ticket(text="The printer is on fire again"))
    await flock.run_until_idle()
    await flock.close()
    return flock


def triage_payloads(db: Path) -> list[dict[str, Any]]:
    return [e["payload"] for e in events(db, "artifact.published") if e["type"] == "Triage"]


WRAPPED = [
    "Sure! Here is the triage:\n```json\n" + json.dumps(GOOD) + "\n```",
    json.dumps(GOOD) + "\n\nI rated it 2 because nobody is hurt.",
    'First a draft:\n```json\n{"summary": "x", "priority": 9}\n```\nFixed:\n```\n'
    + json.dumps(GOOD)
    + "\n```\nDone.",
    "The answer is " + json.dumps(GOOD) + ", hope that helps.",
]


@pytest.mark.parametrize(
    "answer", WRAPPED, ids=["prose+fence", "json+prose", "two-fences", "inline"]
)
async def test_wrapped_json_is_parsed_in_one_call(
    server: OpenAIServer, db_path: Path, answer: str
) -> None:
    server.script(Step(content=answer))
    await run_triage(server, db_path)
    assert server.calls == 1, [(e["_kind"], e.get("error")) for e in events(db_path)]
    assert triage_payloads(db_path) == [GOOD]
    [called] = events(db_path, "model.called")
    assert called["response"] == answer  # the raw answer is recorded as sent


async def test_the_re_ask_quotes_every_validation_error(
    server: OpenAIServer, db_path: Path
) -> None:
    server.script(Step(content='{"priority": 9}'))
    await run_triage(server, db_path)
    [attempt] = events(db_path, "model.attempt")
    assert "2 validation error(s)" in attempt["error"]
    re_ask = server.requests[1]["messages"][-1]["content"]
    assert "summary: Field required" in re_ask and "priority: Input should be less than" in re_ask


def test_parse_output_picks_the_block_that_validates() -> None:
    text = '```json\n{"summary": 1}\n```\n```json\n{"summary": "ok", "priority": 3}\n```'
    [out] = parse_output(text, [Triage])
    assert out == Triage(summary="ok", priority=3)
    with pytest.raises(Exception, match="not JSON"):
        parse_output("no json here", [Triage])


# --- unexpected shapes ----------------------------------------------------------

EMPTY = {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []}
NO_USAGE = {
    "id": "y",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": json.dumps(GOOD)},
            "finish_reason": "stop",
        }
    ],
}


async def test_empty_choices_is_classified_retried_and_recorded(
    server: OpenAIServer, db_path: Path
) -> None:
    server.script(Step(body=EMPTY))
    await run_triage(server, db_path)
    [attempt] = events(db_path, "model.attempt")
    assert attempt["outcome"] == "malformed" and attempt["will_retry"]
    assert "no choices" in attempt["error"] and '"choices":[]' in attempt["error"]
    assert triage_payloads(db_path) == [triage_payloads(db_path)[0]]


async def test_empty_choices_every_time_fails_with_the_raw_answer(
    server: OpenAIServer, db_path: Path
) -> None:
    server.script(*[Step(body=EMPTY) for _ in range(2)])
    await run_triage(server, db_path, retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    [failed] = events(db_path, "task.failed")
    assert "\n" not in failed["error"] and "no choices" in failed["error"]
    assert failed["raw"] and '"choices":[]' in failed["raw"] and failed["transient"]


async def test_missing_usage_is_unknown_not_zero(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(body=NO_USAGE))
    flock = await run_triage(server, db_path)
    [called] = events(db_path, "model.called")
    assert called["tokens_in"] is None and called["tokens_out"] is None
    assert called["cost"] is None and flock.state.totals()["cost"] is None


async def test_a_503_retry_after_is_honoured(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(status=503, headers={"Retry-After": "0.05"}))
    policy = RetryPolicy(base_delay=5.0, max_delay=10.0, timeout=5.0)
    await run_triage(server, db_path, retry=policy)
    [attempt] = events(db_path, "model.attempt")
    assert attempt["status"] == 503 and 0.05 <= attempt["retry_in"] < 0.1


async def test_a_timeout_names_the_model(server: OpenAIServer, db_path: Path) -> None:
    server.script(Step(delay=2.0))
    await run_triage(server, db_path, retry=RetryPolicy(base_delay=0.01, timeout=0.3))
    # The first attempt times out; on a loaded machine a retry can time out too (0.3 s
    # includes the first call's set-up), so only the first one is checked.
    attempt = events(db_path, "model.attempt")[0]
    assert attempt["outcome"] == "timeout" and "openai/test-model" in attempt["error"]


async def test_stream_is_refused_before_the_first_call(server: OpenAIServer, db_path: Path) -> None:
    from flock_es.errors import ConfigError

    with pytest.raises(ConfigError, match="stream=True is not supported"):
        await run_triage(server, db_path, stream=True)
    assert server.calls == 0


# --- prompts ----------------------------------------------------------------------


async def test_the_schema_is_sent_once(server: OpenAIServer, db_path: Path) -> None:
    flock = Flock("openai/gpt-4o-mini", db=db_path, retry=FAST)
    flock.agent("triage").consumes(Ticket).publishes(Triage).model(
        "openai/gpt-4o-mini", api_base=server.url, api_key=KEY
    )
    await flock.publish(Ticket(text="The printer is on fire again"))
    await flock.run_until_idle()
    await flock.close()
    sent = server.requests[0]
    assert sent["response_format"]["json_schema"]["schema"]["title"] == "Triage"
    system = sent["messages"][0]["content"]
    assert '"properties"' not in system and "response format 'Triage'" in system
    # A model without response_format gets it in the prompt (test_litellm checks the rest).
    [called] = events(db_path, "model.called")
    assert '"properties"' in called["request"]["messages"][0]["content"]


def test_a_batch_is_described_as_a_batch_and_tools_are_mentioned() -> None:
    from flock_es.models.prompt import build_messages

    inputs = [{"type": "NewsAnalysis", "payload": {"n": i}} for i in range(8)]
    system, user = build_messages("editor", "", inputs, {"title": "X"}, ["lookup"])
    assert user["content"].startswith("The input: a batch of these 8 NewsAnalysis artifacts")
    assert "You can call these tools before answering: lookup." in system["content"]
    _, one = build_messages("a", "", inputs[:1], {"title": "X"})
    assert one["content"].startswith("The input: one NewsAnalysis artifact.")


@pytest.mark.slow  # the lookup of a .invalid host waits on the resolver: 12.8 s without a network
async def test_a_dns_failure_names_the_endpoint_and_claims_no_http_status(db_path: Path) -> None:
    flock = Flock("openai/test-model", db=db_path, retry=RetryPolicy(max_attempts=1, timeout=20))
    flock.agent("triage").consumes(Ticket).publishes(Triage).model(
        "openai/test-model", api_base="http://no-such-host.invalid/v1", api_key=KEY
    )
    await flock.publish(Ticket(text="The printer is on fire again"))
    await flock.run_until_idle()
    status = await flock.close()
    [failed] = events(db_path, "task.failed")
    assert "cannot connect to http://no-such-host.invalid/v1" in failed["error"]
    assert "HTTP" not in failed["error"] and failed["transient"]
    assert status == "interrupted"  # an outage, not a failure: resume --retry-failed
