"""Every event kind, written by real runs, fits its one definition in ``domain/events.py``.

The hot path builds some bodies as plain dicts (``trusted_event``) and nothing
validates them at run time, so this is what keeps them and their definitions
together. The bodies come from real programs: the news example and a fork
through the CLI, a run interrupted with SIGINT and resumed, a run with gates,
joins, batches, a circuit breaker, a failing predicate, a failing agent and an
embargoed artifact, a model agent with a tool talking to the loopback
OpenAI-compatible server (a 500 first, so a failed attempt is recorded),
the components example (rewritten inputs, a refused match), and the MCP
example with its stdio server. A kind that no real run writes fails the test: it would be a definition nobody checks.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from flock_es import AfterVisibility, BatchSpec, Flock, JoinSpec
from flock_es.domain.describe import describe
from flock_es.domain.events import BODIES, Event, EventKind
from flock_es.domain.validate import check_body
from flock_es.log import LogReader
from flock_es.models.retry import RetryPolicy
from flock_es.runtime.engine import DEFER_AT
from tests.conftest import CLI, EXAMPLES, ROOT, cli_env, run_cli
from tests.openai_server import OpenAIServer, Step

Bodies = dict[EventKind, list[dict[str, Any]]]


class Ask(BaseModel):
    text: str


class Answer(BaseModel):
    text: str


class Left(BaseModel):
    key: str


class Right(BaseModel):
    key: str


class Pair(BaseModel):
    keys: list[str]


class Ticket(BaseModel):
    text: str = Field(min_length=5)


class Triage(BaseModel):
    summary: str
    priority: int = Field(ge=1, le=5)


def lookup_customer(email: str) -> dict[str, str]:
    """Find a customer's plan by e-mail address."""
    return {"email": email, "plan": "gold"}


def _fail(_: object) -> None:
    raise ValueError("this agent always fails")


async def _core_and_gates(db: Path) -> None:
    flock = Flock(db=db, max_agent_iterations=3, reset_circuit_at_idle=True)
    flock.agent("model").consumes(Ask).publishes(Answer)
    flock.agent("fn").consumes(Ask).with_function(lambda a: Answer(text=a.text))
    flock.agent("bad").consumes(Ask).with_function(_fail)
    flock.agent("picky").consumes(Ask, where=lambda a: a.missing).with_function(lambda a: None)
    flock.agent("batch").consumes(
        Answer, batch=BatchSpec(size=10, timeout=timedelta(seconds=0.05))
    ).with_function(lambda xs: None)
    flock.agent("pair").consumes(
        Left, Right, join=JoinSpec(by=lambda x: x.key, within=timedelta(milliseconds=50))
    ).with_function(lambda xs: Pair(keys=[x.key for x in xs])).publishes(Pair)
    await flock.publish_many([Ask(text="one two three four."), Ask(text="five six seven.")])
    await flock.publish_many(Pair(keys=[str(i)]) for i in range(DEFER_AT + 1))  # deferred
    await flock.invoke("fn", Ask(text="direct"), publish_outputs=False)
    for key in ("a", "b", "c", "d"):  # the fourth pair trips the breaker (limit 3)
        await flock.publish(Left(key=key))
        await flock.publish(Right(key=key))
    await flock.publish(Left(key="lonely"))  # its join window expires
    await flock.publish(Ask(text="embargoed for a moment"), visibility=AfterVisibility(ttl=0.05))
    await flock.run_until_idle()
    await flock.close()


async def _loopback_model_with_a_tool(db: Path) -> None:
    server = OpenAIServer().start()
    try:
        server.script(
            Step(status=500),  # a failed attempt (model.attempt), retried
            Step(tool_calls=[{"name": "lookup_customer", "arguments": {"email": "a@b.c"}}]),
        )
        model = "openai/test-model"
        flock = Flock(model, db=db, retry=RetryPolicy(base_delay=0.01, timeout=10.0))
        flock.agent("triage").consumes(Ticket).publishes(Triage).with_tools(
            [lookup_customer]
        ).model(model, api_base=server.url, api_key="sk-test-not-a-real-key")
        await flock.publish(Ticket(text="The printer is on fire again"))
        await flock.run_until_idle()
        await flock.close()
    finally:
        server.stop()


def _mcp_example(tmp: Path) -> Path:
    """The MCP example: ``mcp.listed`` and ``tool.called`` with a server."""
    db = tmp / "mcp.db"
    out = run_cli(["run", EXAMPLES / "mcp_tools.py", "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    return db


def _news_and_a_fork(tmp: Path) -> Path:
    db = tmp / "news.db"
    out = run_cli(["run", EXAMPLES / "news.py", "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    with LogReader(db) as reader:
        run = reader.resolve_run("latest")
        at = next(e.seq for e in reader.events(run) if e.kind is EventKind.BATCH_BUFFERED)
    out = run_cli(["fork", run, "--at", str(at), "--db", db, "-q", "--model", "offline"])
    assert out.returncode == 0, out.stderr
    return db


def _components_example(tmp: Path) -> Path:
    """Agent and orchestrator components: inputs.rewritten and schedule.vetoed."""
    db = tmp / "components.db"
    out = run_cli(["run", EXAMPLES / "components.py", "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    return db


def _interrupted_and_resumed(tmp: Path) -> Path:
    db = tmp / "resumed.db"
    program = ROOT / "tests" / "programs" / "crash_pipeline.py"
    env = {"CRASH_LATENCY": "0.5"}
    proc = subprocess.Popen(
        [*CLI, "run", str(program), "--db", str(db), "-q"],
        env=cli_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    _wait(lambda: _has(db, "task.started"))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    out = run_cli(["resume", "latest", "--db", db, "-q"], env=env)
    assert out.returncode == 0, out.stderr
    return db


def _has(db: Path, kind: str) -> bool:
    if not db.exists():
        return False
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return bool(con.execute("SELECT 1 FROM events WHERE kind = ?", (kind,)).fetchone())
        finally:
            con.close()
    except sqlite3.Error:
        return False


def _wait(ready: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.01)


def _bodies(dbs: list[Path]) -> Bodies:
    out: Bodies = {}
    for db in dbs:
        with LogReader(db) as reader:
            for run in reader.runs():
                for e in reader.iter_events(run.run_id):
                    out.setdefault(e.kind, []).append(e.body)
    return out


@pytest.fixture(scope="module")
def real_bodies(tmp_path_factory: pytest.TempPathFactory) -> Bodies:
    tmp = tmp_path_factory.mktemp("kinds")
    asyncio.run(_core_and_gates(tmp / "gates.db"))
    asyncio.run(_loopback_model_with_a_tool(tmp / "loopback.db"))
    dbs = [tmp / "gates.db", tmp / "loopback.db", _news_and_a_fork(tmp)]
    dbs += [_components_example(tmp), _mcp_example(tmp)]
    return _bodies([*dbs, _interrupted_and_resumed(tmp)])


def test_every_kind_has_a_definition() -> None:
    assert set(BODIES) == set(EventKind)


@pytest.mark.slow  # real runs of every kind: 6.5 s of set-up
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", list(EventKind), ids=str)
def test_real_runs_write_every_kind_and_each_body_fits_its_definition(
    real_bodies: Bodies, kind: EventKind
) -> None:
    bodies = real_bodies.get(kind, [])
    assert bodies, f"no real run wrote a {kind} event: nothing checks its definition"
    for body in bodies:
        check_body(kind, body)
        # The shared describer has a line for it (not the fallback that lists fields).
        line = describe(Event(run_id="r", kind=kind, body=body, ts=0.0))
        assert line and not line.startswith(kind.value), line
