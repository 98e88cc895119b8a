"""What JSON text cannot hold, found before it reaches the log.

An artifact's payload is recorded as JSON, and a few Python values have no JSON
form: a float that is NaN or infinite, and a string holding a lone surrogate
(``"\\udcff"``: what ``os.fsdecode`` makes of a file name that is not UTF-8,
and what ``json.loads`` makes of a model's ``"\\ud83d"`` without its pair). Such a
payload used to reach the log writer, which then failed the whole commit: the run
stopped, the answers paid for in the same commit were lost, and a NaN was even
reported as a damaged database. ``payload_problem`` names the first such value
of a payload, so the publish or the agent's output is refused where it is made,
as any invalid output is, and nothing else is held up.

``storable`` gives text that is not ours to refuse (an exception's message, a
model's raw answer) a form the log can hold: each lone surrogate becomes its
``\\udcff`` escape, the rest is unchanged.

Example::

    payload_problem(Score, {"name": "a", "score": float("nan")})   # "Score.score is nan"
    payload_problem(Score, {"name": "a", "score": 0.5})            # None
    storable("no such file: 'caf\\udce9.txt'")   # "no such file: 'caf\\\\udce9.txt'"
"""

from __future__ import annotations

import math
import typing
from typing import Any

from pydantic import BaseModel

__all__ = ["NOTHING_TO_CHECK", "NOT_JSON", "payload_problem", "storable", "value_problem"]

NOT_JSON = "a payload is recorded as JSON, which has no NaN, infinity or lone surrogate"
"""What follows a problem in the error that refuses its payload."""

# Field annotations whose JSON-mode values are never a float or text: their keys are
# not looked at.
_NEVER_TEXT: frozenset[Any] = frozenset({int, bool, int | None, bool | None})
_SKIPPED: dict[type[BaseModel], frozenset[str]] = {}

NOTHING_TO_CHECK: set[type[BaseModel]] = set()
"""Classes whose payloads cannot hold what JSON cannot (every field an ``int`` or a
``bool``, no extra or computed fields): a caller that tests this set first makes no
call for them (workload (b)'s ``Out(n: int)``: a set lookup an artifact)."""


def _skipped(cls: type[BaseModel]) -> frozenset[str]:
    """The payload keys of ``cls`` that need no look (see ``_NEVER_TEXT``)."""
    keys = _SKIPPED.get(cls)
    if keys is None:
        fields = cls.model_fields
        hooks = cls.__pydantic_decorators__
        # A serialiser of its own may turn a whole number into anything: look at all.
        custom = bool(hooks.field_serializers or hooks.model_serializers)
        keys = _SKIPPED[cls] = frozenset(
            name
            for name, field in fields.items()
            if not custom
            and field.alias is None
            and field.serialization_alias is None
            and (field.annotation in _NEVER_TEXT or _optional_int(field.annotation))
        )
        closed = cls.model_config.get("extra") != "allow" and not cls.model_computed_fields
        if closed and len(keys) == len(fields):
            NOTHING_TO_CHECK.add(cls)
    return keys


def _optional_int(annotation: Any) -> bool:
    """``Optional[int]`` spelt the old way (``typing.Optional``), and its like."""
    args = typing.get_args(annotation)
    return bool(args) and all(a in (int, bool, type(None)) for a in args)


def payload_problem(cls: type[BaseModel], payload: dict[str, Any]) -> str | None:
    """Where ``payload`` (``cls``'s JSON-mode dump) holds what JSON cannot, else ``None``."""
    skipped = _skipped(cls)
    for key, value in payload.items():
        if type(value) is str and value.isascii():  # most fields: no call
            continue
        if key in skipped:
            continue
        problem = value_problem(value, f"{cls.__name__}.{key}")
        if problem is not None:
            return problem
    return None


def value_problem(value: Any, path: str) -> str | None:
    """Where ``value`` (JSON-mode: dicts, lists, text, numbers) holds what JSON cannot."""
    kind = type(value)
    if kind is str or isinstance(value, str):
        return None if value.isascii() else _text_problem(value, path)
    if kind is float or isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}"
    if kind is dict or isinstance(value, dict):
        for k, v in value.items():
            problem = value_problem(k, f"{path} (a key)") or value_problem(v, f"{path}[{k!r}]")
            if problem is not None:
                return problem
    elif kind is list or isinstance(value, list | tuple):
        for i, v in enumerate(value):
            problem = value_problem(v, f"{path}[{i}]")
            if problem is not None:
                return problem
    return None


def _text_problem(text: str, path: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ascii(text[exc.start])[1:-1]
        return f"{path} holds {bad} at character {exc.start}, a lone surrogate that is not text"
    return None


def storable(text: str) -> str:
    """``text`` with each lone surrogate as its escape (``\\udcff``): the log's UTF-8
    cannot hold one. Any other text is returned as it is."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
