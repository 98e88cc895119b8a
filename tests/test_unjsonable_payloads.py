"""Values JSON cannot hold (NaN, infinity, a lone surrogate) never reach the log writer.

Before, such a payload failed the writer's whole commit: the run stopped (a NaN was
even reported as a damaged database, with advice to salvage it), and the answers
paid for in the same commit were lost and paid again on resume. Now the output is
refused where it is made: a function agent's task fails with a line naming the
type and field, a model's answer is asked again, a publish raises. Everything
runs through the real CLI, the model agents against the loopback OpenAI server.
"""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_tool
from flock_es.domain.json_values import payload_problem, storable, value_problem
from flock_es.log.reader import LogReader
from flock_es.runtime.replay import Replayer
from tests.conftest import run_cli
from tests.openai_server import OpenAIServer, Step
from tests.pg import pg_url  # noqa: F401  (fixture)
from tests.test_litellm import FAST, KEY, Ticket, Triage, events, run_one, server

__all__ = ["server"]  # the loopback-server fixture, shared with test_litellm

TYPES = """
from pydantic import BaseModel
from flock_es import Flock, flock_type

@flock_type
class Item(BaseModel):
    name: str

@flock_type
class Score(BaseModel):
    name: str
    score: float

@flock_type
class Verdict(BaseModel):
    name: str
    ok: bool

flock = Flock()
"""

SCORES = (
    TYPES
    + """
BAD = BAD_VALUE  # the test puts the bad value here

def score(x: Item) -> Score:
    if x.name == "bad":
        return Score(name=BAD, score=0.5) if BAD != "nan" else Score(name="bad", score=float("nan"))
    return Score(name=x.name, score=0.5)

def judge(s: Score) -> Verdict:
    return Verdict(name=s.name, ok=True)

flock.agent("score").consumes(Item).publishes(Score).with_function(score)
flock.agent("judge").consumes(Score).publishes(Verdict).with_function(judge)

async def main():
    for name in ["a", "bad", "c"]:
        await flock.publish(Item(name=name))
    await flock.run_until_idle()
"""
)


def kinds(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
    finally:
        con.close()


def write(tmp_path: Path, source: str) -> Path:
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(source))
    return program


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ('"nan"', "Score.score is nan"),
        ('"caf\\udce9"', "Score.name holds \\udce9 at character 3, a lone surrogate"),
    ],
)
def test_a_function_output_json_cannot_hold_fails_its_task_and_the_run_goes_on(
    tmp_path: Path, bad: str, said: str
) -> None:
    program = write(tmp_path, SCORES.replace("BAD_VALUE", bad))
    db = tmp_path / "run.db"
    out = run_cli(["run", program, "--db", db], cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # a task failed: not a stop, not a traceback
    assert "Traceback" not in out.stderr and "damaged" not in out.stderr
    assert said in out.stderr and "which has no NaN, infinity or lone surrogate" in out.stderr
    counts = kinds(db)
    assert counts["task.failed"] == 1 and counts["task.completed"] == 4  # 2 scores, 2 verdicts
    assert counts["run.finished"] == 1
    show = run_cli(["show", "latest", "--db", db])
    assert show.returncode == 0 and said in show.stdout
    replay = run_cli(["replay", "latest", "--db", db, "--no-timeline"])
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout


def test_a_publish_json_cannot_hold_is_one_line_and_keeps_what_came_before(
    tmp_path: Path,
) -> None:
    program = write(
        tmp_path,
        TYPES
        + """
async def main():
    await flock.publish(Item(name="first"))
    await flock.publish(Item(name="caf\\udce9.txt"))
""",
    )
    db = tmp_path / "run.db"
    out = run_cli(["run", program, "--db", db], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "flock-es: error: Item.name holds \\udce9 at character 3, a lone surrogate that is "
        "not text: a payload is recorded as JSON, which has no NaN, infinity or lone surrogate"
    ]
    assert kinds(db)["artifact.published"] == 1


MODEL_PROGRAM = (
    TYPES
    + """
flock.agent("scorer").description("score the item").consumes(Item).publishes(Score)

async def main():
    for n in range(12):
        await flock.publish(Item(name=f"item {n}"))
    await flock.run_until_idle()
"""
)


@pytest.mark.slow  # the CLI against the loopback model server, twice
@pytest.mark.parametrize(
    "answer",
    ['{"name": "half \\ud83d", "score": 0.5}', '{"name": "x", "score": NaN}'],
    ids=["lone-surrogate", "nan"],
)
def test_a_model_answer_json_cannot_hold_is_asked_again_and_every_answer_is_kept(
    tmp_path: Path, answer: str
) -> None:
    """Twelve model agents commit their answers together; the bad one used to fail that
    commit and lose the others' answers too. Now it is asked again, every paid answer
    is recorded, and a resume pays for none of them."""
    program = write(tmp_path, MODEL_PROGRAM)
    server = OpenAIServer().start()
    try:
        server.script(Step(content=answer))
        env = {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": "sk-test-JSONVALUES12345"}
        db = tmp_path / "run.db"
        out = run_cli(["run", program, "--db", db, "-m", "openai/test-model"], env=env)
        assert out.returncode == 0, out.stderr
        assert "1 invalid_output" in out.stderr
        counts = kinds(db)
        assert counts["model.called"] == server.completed == 13  # 12 tasks, 1 asked again
        assert counts["task.completed"] == 12
        again = run_cli(["resume", "latest", "--db", db, "-m", "openai/test-model"], env=env)
        assert again.returncode == 0 and server.completed == 13, again.stderr
    finally:
        server.stop()
    replay = run_cli(["replay", "latest", "--db", db, "--no-timeline"])
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout


def test_text_the_program_puts_in_an_event_stops_the_run_with_one_line(tmp_path: Path) -> None:
    """Not a payload: a description read from a file name that is not UTF-8."""
    program = write(
        tmp_path,
        TYPES
        + """
def f(x: Item) -> None:
    return None

flock.agent("f").description("reads caf\\udce9").consumes(Item).with_function(f)

async def main():
    await flock.publish(Item(name="a"))
    await flock.run_until_idle()
""",
    )
    out = run_cli(["run", program, "--db", tmp_path / "run.db"], cwd=tmp_path)
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("flock-es: error: run.started holds what the log cannot store")
    assert "a lone surrogate, text that is not UTF-8" in line


def test_the_checks_name_the_first_value_and_leave_json_alone() -> None:
    class Deep(BaseModel):
        n: int
        items: list[dict[str, float]]

    ok = {"n": 1, "items": [{"a": 1.5}, {"b": -0.0}]}
    assert payload_problem(Deep, ok) is None
    bad = {"n": 1, "items": [{"a": 1.5}, {"b": float("-inf")}]}
    assert payload_problem(Deep, bad) == "Deep.items[1]['b'] is -inf"
    assert value_problem({"caf\udce9": 1}, "x") == (
        "x (a key) holds \\udce9 at character 3, a lone surrogate that is not text"
    )
    assert value_problem(["é", "日本", 3, None, True], "x") is None
    assert storable("no such file: caf\udce9.txt") == "no such file: caf\\udce9.txt"
    for text in ("plain", "café 日本 🎉", "a\\udce9 already escaped"):
        assert storable(text) is text  # text the log can hold is returned as it is


def test_on_postgres_a_nan_output_fails_its_task_and_the_run_goes_on(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    program = write(tmp_path, SCORES.replace("BAD_VALUE", '"nan"'))
    out = run_cli(["run", program, "--db", pg_url], cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "Score.score is nan" in out.stderr and "Traceback" not in out.stderr
    assert "2 done" not in out.stderr and "4 done, 1 failed" in out.stderr
    replay = run_cli(["replay", "latest", "--db", pg_url, "--no-timeline"])
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout


def test_only_classes_of_whole_numbers_skip_the_check() -> None:
    from pydantic import ConfigDict, computed_field, field_serializer

    from flock_es.domain.json_values import NOTHING_TO_CHECK

    class Counts(BaseModel):
        n: int
        done: bool | None = None

    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        n: int

    class Derived(BaseModel):
        n: int

        @computed_field  # type: ignore[prop-decorator]
        @property
        def ratio(self) -> float:
            return self.n / 0 if self.n else float("nan")

    assert payload_problem(Counts, {"n": 1, "done": None}) is None
    assert Counts in NOTHING_TO_CHECK
    assert payload_problem(Open, {"n": 1, "x": float("nan")}) == "Open.x is nan"
    assert payload_problem(Derived, Derived(n=0).model_dump(mode="json")) == "Derived.ratio is nan"

    class Scaled(BaseModel):
        n: int

        @field_serializer("n")
        def ratio(self, n: int) -> float:
            return n / 0 if n else float("inf")

    assert payload_problem(Scaled, Scaled(n=0).model_dump(mode="json")) == "Scaled.n is inf"
    assert Open not in NOTHING_TO_CHECK and Derived not in NOTHING_TO_CHECK
    assert Scaled not in NOTHING_TO_CHECK


@flock_tool(name="list_folder")
def list_folder(folder: str) -> dict[str, Any]:
    """The files of a folder, one of them named in Latin-1 (``os.fsdecode``'s escape)."""
    return {"folder": folder, "files": ["ok.txt", "caf\udce9.txt"]}


@pytest.mark.slow  # a run and its replay against the loopback model server
async def test_a_tool_result_with_a_lone_surrogate_is_stored_escaped_and_replays(
    server: OpenAIServer, db_path: Path
) -> None:
    server.script(Step(tool_calls=[{"name": "list_folder", "arguments": {"folder": "docs"}}]))

    def tool_flock() -> Flock:
        flock = Flock("openai/test-model", db=db_path, retry=FAST)
        flock.agent("triage").consumes(Ticket).publishes(Triage).with_tools([list_folder]).model(
            "openai/test-model", api_base=server.url, api_key=KEY
        )
        return flock

    await run_one(tool_flock())
    [tool] = events(db_path, "tool.called")
    assert '"caf\\udce9.txt"' in tool["result"]  # the escape, as text: what the model heard
    assert len(events(db_path, "task.completed")) == 1
    with LogReader(db_path) as reader:
        recorded = list(reader.events(reader.resolve_run("latest")))
    report = await Replayer(recorded, tool_flock().agents).run()
    assert report.identical, report.divergence


BYTES = (
    TYPES
    + """
from pydantic import ConfigDict

@flock_type
class Raw(BaseModel):
    blob: bytes

@flock_type
class Encoded(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    blob: bytes

def raw(x: Item) -> Raw:
    return Raw(blob=b"\\xff\\xfe")

def encoded(x: Item) -> Encoded:
    return Encoded(blob=b"\\xff\\xfe")

def check(e: Encoded) -> Verdict:
    return Verdict(name="encoded", ok=e.blob == b"\\xff\\xfe")

flock.agent("raw").consumes(Item).publishes(Raw).with_function(raw)
flock.agent("encoded").consumes(Item).publishes(Encoded).with_function(encoded)
flock.agent("check").consumes(Encoded).publishes(Verdict).with_function(check)

async def main():
    await flock.publish(Item(name="a"))
    await flock.run_until_idle()
"""
)


def test_bytes_that_are_not_utf8_fail_their_task_with_the_way_out(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    out = run_cli(["run", write(tmp_path, BYTES), "--db", db], cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "Raw does not serialise to JSON: 'utf-8' codec can't decode byte 0xff" in out.stderr
    assert "ser_json_bytes='base64'" in out.stderr
    con = sqlite3.connect(db)
    try:
        [(ok,)] = con.execute(
            "SELECT json_extract(body, '$.payload.ok') FROM events WHERE kind = 'artifact.published'"
            " AND json_extract(body, '$.type') = 'Verdict'"
        ).fetchall()
    finally:
        con.close()
    assert ok == 1  # the base64 bytes came back whole to the agent that read them
    replay = run_cli(["replay", "latest", "--db", db, "--no-timeline"])
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout


def test_a_large_publish_names_the_object_and_commits_none_of_itself(tmp_path: Path) -> None:
    program = write(
        tmp_path,
        TYPES
        + """
async def main():
    await flock.publish(Score(name="first", score=1.0))
    bad = 4_500
    await flock.publish_many(
        Score(name=str(n), score=float("inf") if n == bad else 0.5) for n in range(5_000)
    )
""",
    )
    db = tmp_path / "run.db"
    out = run_cli(["run", program, "--db", db], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "flock-es: error: object 4500 (from 0) of the publish: Score.score is inf: "
        "a payload is recorded as JSON, which has no NaN, infinity or lone surrogate"
    ]
    assert kinds(db)["artifact.published"] == 1  # the streamed publish is one unit
