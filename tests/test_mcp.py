"""MCP servers' tools for model agents, with real MCP servers started by the test.

A stdio server written here with the ``mcp`` package's ``FastMCP`` counts its
calls in a file, so the tests can tell a served result from a repeated call;
the example's server also serves streamable HTTP on 127.0.0.1. The offline
model calls every offered tool once, so no network and no key are needed.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flock_es import Flock, StdioServerParameters, StreamableHttpServerParameters
from flock_es.errors import ConfigError, DefinitionError
from tests.conftest import EXAMPLES, event_kinds, kill_cli_when, run_cli

# Not importorskip: importing mcp costs 0.7 s, which every xdist worker would pay at
# collection; the servers these tests start import it, in their own processes.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mcp") is None, reason="the mcp package is not installed"
)

SERVER = '''
import sys
from mcp.server.fastmcp import FastMCP

server = FastMCP("notes")
LOG = sys.argv[1]


@server.tool()
def lookup(topic: str) -> dict:
    """Facts about a topic."""
    with open(LOG, "a") as f:
        f.write(topic + "\\n")
    if topic == "crash":
        import os
        os._exit(3)
    return {"facts": f"{topic} is well documented in the archive"}


if __name__ == "__main__":
    server.run()
'''

PROGRAM = """
import asyncio, sys
from pathlib import Path
from pydantic import BaseModel
from flock_es import Flock, StdioServerParameters, flock_type

@flock_type
class Question(BaseModel):
    topic: str

@flock_type
class Note(BaseModel):
    facts: str

flock = Flock()
here = Path(__file__).parent
flock.add_mcp("notes", StdioServerParameters(
    command=sys.executable, args=[str(here / "notes_server.py"), str(here / "calls.txt")]))
flock.agent("researcher").consumes(Question).publishes(Note).with_mcps(["notes"])

async def main():
    await flock.publish(Question(topic=TOPIC))
    await flock.run_until_idle()
    for note in await flock.store.get_by_type(Note):
        print("note:", note.facts)

if __name__ == "__main__":
    asyncio.run(main())
"""


class Question(BaseModel):
    topic: str


class Note(BaseModel):
    facts: str


def write_program(tmp: Path, topic: str = "owls") -> Path:
    (tmp / "notes_server.py").write_text(SERVER)
    program = tmp / "notes.py"
    program.write_text(PROGRAM.replace("TOPIC", repr(topic)))
    return program


def calls(tmp: Path) -> list[str]:
    log = tmp / "calls.txt"
    return log.read_text().splitlines() if log.exists() else []


def kinds(db: Path) -> list[str]:
    """``event_kinds``, or none while the log is still being created."""
    try:
        return event_kinds(db)
    except sqlite3.Error:
        return []


def bodies(db: Path, kind: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT body FROM events WHERE kind = ? ORDER BY seq", (kind,))
        return [json.loads(b) for (b,) in rows]
    finally:
        con.close()


async def test_stdio_tools_are_namespaced_recorded_and_reach_the_answer(tmp_path: Path) -> None:
    (tmp_path / "notes_server.py").write_text(SERVER)
    server = StdioServerParameters(
        command=sys.executable,
        args=[str(tmp_path / "notes_server.py"), str(tmp_path / "calls.txt")],
    )
    db = tmp_path / "run.db"
    flock = Flock(db=db).add_mcp("notes", server)
    flock.agent("researcher").consumes(Question).publishes(Note).with_mcps(["notes"])
    await flock.publish(Question(topic="owls"))
    await flock.run_until_idle()
    [note] = await flock.store.get_by_type(Note)
    await flock.close()

    assert calls(tmp_path) == ["owls"]  # the argument is the input field of that name
    assert note.facts == "owls is well documented in the archive"
    [listed] = bodies(db, "mcp.listed")
    assert [t["name"] for t in listed["servers"]["notes"]] == ["lookup"]
    [tool] = bodies(db, "tool.called")
    assert (tool["tool"], tool["server"], tool["error"]) == ("notes__lookup", "notes", None)
    assert json.loads(tool["arguments"]) == {"topic": "owls"}
    [first, _] = bodies(db, "model.called")
    offered = [t["function"]["name"] for t in first["request"]["tools"]]
    assert offered == ["notes__lookup"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server() -> Iterator[str]:
    """The example's server on streamable HTTP, 127.0.0.1, a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "mcp_server.py"), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Trip(BaseModel):
    city: str
    days: int


class Outlook(BaseModel):
    forecast: str


async def test_streamable_http_server(http_server: str, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    flock = Flock(db=db)
    flock.add_mcp(
        "weather",
        StreamableHttpServerParameters(url=http_server),
        tool_whitelist=["forecast"],
    )
    flock.agent("planner").consumes(Trip).publishes(Outlook).with_mcps(["weather"])
    await flock.publish(Trip(city="Oslo", days=2))
    await flock.run_until_idle()
    [outlook] = await flock.store.get_by_type(Outlook)
    await flock.close()
    [tool] = bodies(db, "tool.called")  # the whitelist left out weather__advice
    assert tool["tool"] == "weather__forecast" and tool["server"] == "weather"
    assert json.loads(tool["arguments"]) == {"city": "Oslo", "days": 2}
    assert outlook.forecast.startswith("Oslo: day 1: ") and "day 2: " in outlook.forecast


def test_declaration_errors() -> None:
    flock = Flock()
    flock.add_mcp("a", StdioServerParameters(command="true"))
    with pytest.raises(ConfigError, match="already registered"):
        flock.add_mcp("a", StdioServerParameters(command="true"))
    with pytest.raises(ConfigError, match="without '__'"):
        flock.add_mcp("a__b", StdioServerParameters(command="true"))
    with pytest.raises(DefinitionError, match="not registered: b"):
        flock.agent("x").with_mcps(["a", "b"])
    builder = flock.agent("y").with_mcps([{"a": {"tool_whitelist": ["t"]}}])
    assert builder.agent.mcp_servers == ["a"] and builder.agent.mcp_whitelist == {"a": ["t"]}


@pytest.mark.slow
def test_example_replays_identical_with_its_server_gone(tmp_path: Path) -> None:
    for name in ("mcp_tools.py", "mcp_server.py"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text())
    db = tmp_path / "run.db"
    run = run_cli(["run", "mcp_tools.py", "--db", db], cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("Oslo: day 1: "), run.stdout
    assert "packing: light layers and sunglasses" in run.stdout
    assert event_kinds(db).count("tool.called") == 2

    (tmp_path / "mcp_server.py").rename(tmp_path / "gone.py")
    rep = run_cli(["replay", "latest", "--db", db, "--no-timeline"], cwd=tmp_path)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "identical" in rep.stdout


@pytest.mark.slow
def test_resume_after_sigkill_serves_the_recorded_tool_call(tmp_path: Path) -> None:
    program = write_program(tmp_path)
    db = tmp_path / "run.db"
    # A slow model: the kill lands after the tool call, during the second model call.
    args = ["run", program, "--db", db, "-m", "offline?latency=2", "-q"]
    assert kill_cli_when(args, lambda: "tool.called" in kinds(db), tmp_path)
    assert calls(tmp_path) == ["owls"] and "task.completed" not in event_kinds(db)

    out = run_cli(["resume", "latest", "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert calls(tmp_path) == ["owls"]  # served from the record, not called again
    notes = [b["payload"] for b in bodies(db, "artifact.published") if b["type"] == "Note"]
    assert notes == [{"facts": "owls is well documented in the archive"}]
    assert event_kinds(db).count("tool.called") == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "MCP server 'notes' failed to start: "),
        ("crash", "MCP server 'notes' stopped: "),
    ],
)
def test_a_server_that_fails_is_one_line(tmp_path: Path, setup: str, expected: str) -> None:
    program = write_program(tmp_path, topic="crash" if setup == "crash" else "owls")
    if setup == "missing":
        (tmp_path / "notes_server.py").unlink()
    out = run_cli(["run", program, "--db", tmp_path / "run.db"], cwd=tmp_path)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("flock-es: error:")]
    assert len(lines) == 1 and expected in lines[0], out.stderr


def test_importing_flock_es_does_not_load_mcp() -> None:
    code = (
        "import sys, flock_es\n"
        "from flock_es import Flock, StdioServerParameters\n"
        "f = Flock(); f.add_mcp('a', StdioServerParameters(command='true'))\n"
        "f.agent('x').with_mcps(['a'])\n"
        "assert 'mcp' not in sys.modules, 'mcp was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
