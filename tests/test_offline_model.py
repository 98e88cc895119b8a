"""The offline model answers with valid, deterministic JSON drawn from the inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from flock_es.errors import ConfigError
from flock_es.models.base import ModelRequest
from flock_es.models.offline import OfflineModel
from flock_es.models.prompt import output_schema, parse_output
from tests.conftest import run_cli
from tests.property_budget import examples


class Mood(StrEnum):
    happy = "happy"
    sad = "sad"


class Inner(BaseModel):
    label: str = Field(min_length=5, max_length=20)
    weight: float = Field(gt=0, lt=1)


class Complex(BaseModel):
    category: Literal["world", "technology", "sports"]
    mood: Mood
    title: str = Field(min_length=30, max_length=60)
    items: list[str] = Field(min_length=3, max_length=5)
    scores: list[int] = Field(min_length=1, max_length=2)
    count: int = Field(ge=10, le=12)
    ratio: float = Field(ge=-1.5, le=-1.0)
    inner: Inner
    inners: list[Inner] = Field(min_length=2)
    maybe: Inner | None = None
    flag: bool
    tags: dict[str, str] = Field(default_factory=dict)


def request(
    agent: str, inputs: list[dict[str, object]], cls: type[BaseModel] = Complex
) -> ModelRequest:
    return ModelRequest(
        model="offline", agent=agent, inputs=inputs, output_schema=output_schema([cls])
    )


STORY: dict[str, object] = {
    "type": "News",
    "payload": {
        "headline": "Rivers rise",
        "body": "Rain fell for days. The river rose fast. Towns are on alert.",
    },
}


def test_answer_validates_against_constraints_and_prefers_named_enum() -> None:
    m = OfflineModel()
    out = parse_output(m.answer(request("technology_analyst", [STORY])), [Complex])
    (obj,) = out
    assert isinstance(obj, Complex)
    assert obj.category == "technology"  # taken from the agent's name


def test_answer_is_deterministic_and_drawn_from_the_inputs() -> None:
    m = OfflineModel()
    a = m.answer(request("x", [STORY]))
    assert a == m.answer(request("x", [STORY]))
    assert any(word in a for word in ("river", "Rain", "Towns"))
    assert a != m.answer(request("y", [STORY]))


def test_several_published_types_get_one_object_each() -> None:
    class A(BaseModel):
        a: str

    class B(BaseModel):
        b: int = Field(ge=3, le=3)

    schema = output_schema([A, B])
    req = ModelRequest(model="offline", agent="x", inputs=[STORY], output_schema=schema)
    objs = parse_output(OfflineModel().answer(req), [A, B])
    assert [type(o).__name__ for o in objs] == ["A", "B"]


@settings(max_examples=examples(50), deadline=None)
@given(st.text(min_size=0, max_size=300), st.text(min_size=1, max_size=20))
def test_any_input_text_still_validates(text: str, agent: str) -> None:
    inputs: list[dict[str, object]] = [{"type": "T", "payload": {"text": text}}]
    (obj,) = parse_output(OfflineModel().answer(request(agent, inputs)), [Complex])
    assert isinstance(obj, Complex)


async def test_latency_option_and_bad_options() -> None:
    m = OfflineModel.from_string("offline?latency=0.01")
    assert m.latency == 0.01
    assert OfflineModel.from_string("offline:0.5").latency == 0.5
    with pytest.raises(ConfigError):
        OfflineModel.from_string("offline?latency=soon")
    with pytest.raises(ConfigError):
        OfflineModel.from_string("offline?speed=1")
    resp = await m.complete(request("x", [STORY]))
    assert json.loads(resp.content) and (resp.tokens_in or 0) > 0 and resp.cost == 0.0
    # Worked out within the latency, the answer is the one a zero-latency call gives.
    assert resp.content == (await OfflineModel().complete(request("x", [STORY]))).content


def test_offline_runs_never_import_litellm(tmp_path: object) -> None:
    code = (
        "import asyncio, sys\n"
        "from pydantic import BaseModel\n"
        "from flock_es import Flock\n"
        "class A(BaseModel):\n    text: str\n"
        "class B(BaseModel):\n    summary: str\n"
        f"f = Flock(db={str(tmp_path)!r} + '/x.db')\n"
        "f.agent('s').consumes(A).publishes(B)\n"
        "async def main():\n"
        "    await f.publish(A(text='hello there world'))\n"
        "    await f.run_until_idle()\n"
        "    await f.close()\n"
        "asyncio.run(main())\n"
        "import flock_es.cli.app\n"
        "print('litellm' in sys.modules, 'textual' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False False"


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON_VALUES)
@settings(max_examples=examples(200), deadline=None)
def test_json_encoder_writes_what_json_dumps_writes(value: object) -> None:
    # The prompt, the request digest and the offline answers hash and record this text:
    # the one-shot encoder must write it byte for byte as json.dumps does.
    from flock_es.models.prompt import json_encoder, json_text

    digest_json = json_encoder(sort_keys=True, default=str)  # ModelRequest.digest's
    assert json_text(value) == json.dumps(value, ensure_ascii=False)
    assert json_encoder()(value) == json.dumps(value)
    assert digest_json(value) == json.dumps(value, sort_keys=True, default=str)
    assert digest_json({"o": object}) == json.dumps({"o": object}, sort_keys=True, default=str)


def test_offline_answers_stay_what_they_were() -> None:
    # The generator seeds its Mersenne Twister and reads the inputs' text only when an
    # answer first needs them: the draws, and so the answers, must not change. Pinned
    # from the answers before that change (any change to them is a visible one: the
    # examples' outputs, recorded demos).
    import hashlib

    class Num(BaseModel):
        n: int
        total: int
        x: float
        flag: bool

    answers = [
        OfflineModel().answer(request(agent, inputs, cls))
        for cls in (Complex, Num, Inner)
        for agent in ("technology_analyst", "x")
        for inputs in ([], [STORY])
    ]
    digest = hashlib.sha256("\n".join(answers).encode()).hexdigest()
    assert digest == "5f506489b792d71bde26f8c404ba4633cc9b8f0dab75528937ee6a79461ac571"


@pytest.mark.parametrize("model", ["offline?latency=abc", "offline?latncy=1", "offline:-1"])
def test_a_bad_offline_model_is_one_line_though_no_agent_calls_it(
    tmp_path: Path, model: str
) -> None:
    """Only function agents: ``--model`` is still checked, not taken and ignored."""
    prog = tmp_path / "fn.py"
    prog.write_text(
        "from pydantic import BaseModel\n"
        "from flock_es import Flock, flock_type\n"
        "@flock_type\nclass A(BaseModel):\n    n: int\n"
        "flock = Flock()\n"
        "flock.agent('f').consumes(A).with_function(lambda a: None)\n"
        "async def main():\n    await flock.publish(A(n=1))\n    await flock.run_until_idle()\n"
    )
    out = run_cli(["run", prog, "--db", tmp_path / "x.db", "-q", "--model", model], cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flock-es: error: ") and "offline" in lines[0]
