"""An artifact's payload: ``model_dump(mode="json")``, without its keyword arguments.

``model_dump`` passes fifteen keyword arguments on to the class's serialiser (a
third of an output's serialisation, issue 14), all at their defaults. For a class
that keeps pydantic's own ``model_dump``, the serialiser is called directly, with
the same result; a class that overrides it keeps its own. Whether a class keeps
it is remembered (``PLAIN_DUMP``), and the kernel's hot path reads that dict
itself rather than call ``payload_of`` once per artifact.

Example::

    payload_of(Analysis(category="c"))   # {"category": "c"}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from flock_es.domain.json_values import NOT_JSON, payload_problem
from flock_es.domain.registry import type_name
from flock_es.errors import PayloadNotJson

__all__ = ["PLAIN_DUMP", "check_payloads", "not_dumped", "not_json", "payload_of", "plain_dump"]

PLAIN_DUMP: dict[type[BaseModel], bool] = {}
"""Whether a class serialises as pydantic's own ``model_dump`` does (not overridden)."""
_MODEL_DUMP = BaseModel.model_dump


def plain_dump(cls: type[BaseModel]) -> bool:
    """Whether ``cls`` keeps pydantic's own ``model_dump`` (remembered in ``PLAIN_DUMP``)."""
    plain = PLAIN_DUMP[cls] = cls.model_dump is _MODEL_DUMP
    return plain


def payload_of(obj: BaseModel) -> dict[str, Any]:
    """``obj.model_dump(mode="json")``, through the serialiser itself where that is the same."""
    cls = type(obj)
    plain = PLAIN_DUMP.get(cls)
    if plain is None:
        plain = plain_dump(cls)
    if plain:
        dumped: dict[str, Any] = obj.__pydantic_serializer__.to_python(obj, mode="json")
        return dumped
    return obj.model_dump(mode="json")


def not_json(problem: str) -> PayloadNotJson:
    """The error that refuses a payload with ``problem`` (``payload_problem``'s words)."""
    return PayloadNotJson(f"{problem}: {NOT_JSON}")


def not_dumped(name: str, exc: Exception) -> PayloadNotJson:
    """The error for an object of type ``name`` whose JSON-mode dump raised ``exc``."""
    why = " ".join(str(exc).split())
    if isinstance(exc, UnicodeDecodeError):  # a ``bytes`` field: pydantic writes it as UTF-8
        why += " (bytes that are not UTF-8: ser_json_bytes='base64' in the model's config)"
    return PayloadNotJson(f"{name} does not serialise to JSON: {why}")


def check_payloads(outputs: list[BaseModel]) -> None:
    """Raise ``not_json`` for the first of ``outputs`` JSON cannot hold, as the live
    run's ``Kernel.artifact_event`` does (a replay makes no events of its outputs)."""
    for obj in outputs:
        try:
            payload = payload_of(obj)
        except (PydanticSerializationError, UnicodeDecodeError) as exc:
            raise not_dumped(type_name(type(obj)), exc) from exc
        problem = payload_problem(type(obj), payload)
        if problem is not None:
            raise not_json(problem)
