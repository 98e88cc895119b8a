"""@flock_tool: Flock's tool decorator; its name is what the model sees and the log records.

The model is the loopback OpenAI-compatible server, scripted to call the tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flock_es import Flock, flock_tool
from flock_es.domain import registry
from flock_es.errors import DefinitionError
from flock_es.log.reader import LogReader
from flock_es.runtime.replay import Replayer
from tests.openai_server import OpenAIServer, Step
from tests.test_litellm import FAST, KEY, Ticket, Triage, events, run_one, server

__all__ = ["server"]  # the loopback-server fixture, shared with test_litellm

CALLS: list[str] = []


@flock_tool(name="customer_lookup")
def lookup(email: str) -> dict[str, Any]:
    """Find a customer's plan by e-mail address."""
    CALLS.append(email)
    return {"email": email, "plan": "gold"}


@flock_tool
async def plan_price(plan: str) -> int:
    """Monthly price of a plan."""
    return {"gold": 30}.get(plan, 10)


def tool_flock(db: Path, srv: OpenAIServer) -> Flock:
    flock = Flock("openai/test-model", db=db, retry=FAST)
    flock.agent("triage").consumes(Ticket).publishes(Triage).with_tools([lookup, plan_price]).model(
        "openai/test-model", api_base=srv.url, api_key=KEY
    )
    return flock


def test_flock_tool_returns_the_function_and_registers_its_name() -> None:
    assert lookup("x@y.z") == {"email": "x@y.z", "plan": "gold"}
    assert registry.tool_name(lookup) == "customer_lookup"
    assert registry.tool_name(plan_price) == "plan_price"
    assert registry.resolve_tool("customer_lookup") is lookup
    with pytest.raises(DefinitionError, match="non-empty string"):
        flock_tool(name="")
    with pytest.raises(DefinitionError, match="two tools are named 'customer_lookup'"):

        @flock_tool(name="customer_lookup")
        def other(q: str) -> str:
            return q

        Flock().agent("a").consumes(Ticket).publishes(Triage).with_tools([lookup, other])


@pytest.mark.slow  # 3.7 s: a run, then a replay, against the loopback server
async def test_the_model_calls_the_tool_by_its_registered_name_and_replay_serves_it(
    server: OpenAIServer, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script(Step(tool_calls=[{"name": "customer_lookup", "arguments": {"email": "a@b.c"}}]))
    CALLS.clear()
    flock = tool_flock(db_path, server)
    await run_one(flock)
    offered = server.requests[0]["tools"]
    assert [t["function"]["name"] for t in offered] == ["customer_lookup", "plan_price"]
    assert CALLS == ["a@b.c"]
    [tool] = events(db_path, "tool.called")
    assert tool["tool"] == "customer_lookup" and '"gold"' in tool["result"]
    (started,) = events(db_path, "run.started")
    assert started["agents"][0]["tools"] == ["customer_lookup", "plan_price"]

    server.stop()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LogReader(db_path) as reader:
        recorded = list(reader.events(reader.resolve_run("latest")))
    report = await Replayer(recorded, tool_flock(db_path, server).agents).run()
    assert report.identical, report.divergence
    assert report.model_calls == 0 and CALLS == ["a@b.c"]
