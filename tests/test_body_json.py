"""The log's body JSON (``log/body_json.py``) is pydantic's ``to_json`` text, byte for
byte: orjson writes what it can write the same, and pydantic the rest."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_core import to_json

from flock_es.log.body_json import body_bytes, body_text
from flock_es.log.event_rows import dumps
from tests.property_budget import examples

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and the infinities too
    | st.text()
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(_VALUES)
@settings(max_examples=examples(1000), deadline=None)
def test_json_values_are_written_as_pydantic_writes_them(value: Any) -> None:
    assert body_bytes(value) == to_json(value)
    assert body_text(value) == dumps(value) == to_json(value).decode()


class _Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class _Point:
    x: int


class _Model(BaseModel):
    n: int


@pytest.mark.parametrize(
    "value",
    [
        {"score": float("nan")},
        {"up": float("inf"), "down": float("-inf")},
        {"big": 2**70},
        {1: "a key that is not a string"},
        {"at": dt.datetime(2026, 12, 1, 7, 30, tzinfo=dt.UTC)},
        {"naive": dt.datetime(2026, 12, 1, 7, 30), "day": dt.date(2026, 12, 1)},
        {"when": dt.time(7, 30)},
        {"point": _Point(1)},
        {"model": _Model(n=1)},
        {"colour": _Colour.RED, "id": uuid.UUID(int=1)},
        {"tuple": (1, 2)},
        {"bytes": b"raw"},
        {"text": "null, and NaN, in a string", "none": None},
        {"unicode": "café ☕", "controls": "\x00\x1f\x7f"},
    ],
    ids=lambda v: ",".join(map(str, v)),
)
def test_values_orjson_would_write_otherwise_are_written_by_pydantic(value: Any) -> None:
    assert body_bytes(value) == to_json(value)


def test_a_body_pydantic_refuses_is_refused() -> None:
    # A set: orjson refuses it, and pydantic writes it as a list; a lone surrogate
    # neither can write. The error is pydantic's, as before.
    assert body_bytes({"s": {1}}) == to_json({"s": {1}})
    with pytest.raises(Exception, match="surrogates"):
        body_bytes({"s": "\ud800"})
