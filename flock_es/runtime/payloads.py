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

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from flock_es.domain.json_values import NOT_JSON, NOTHING_TO_CHECK, payload_problem
from flock_es.domain.registry import type_name
from flock_es.domain.validation_text import first_problem
from flock_es.errors import PayloadInvalid, PayloadNotJson

__all__ = ["PLAIN_DUMP", "check_payloads", "checked_payload", "payload_of", "plain_dump"]

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


def checked_payload(obj: BaseModel, cls: type[BaseModel], name: str) -> dict[str, Any]:
    """``payload_of(obj)`` (``obj`` of class ``cls``, registered as ``name``), or
    ``PayloadNotJson`` if its dump fails or holds what JSON cannot (``payload_problem``),
    ``PayloadInvalid`` if its own type does not validate it.

    What ``Kernel.artifact_event`` records, and what a replay checks its outputs with
    (it makes no events of them): the two refuse the same outputs in the same words."""
    plain = PLAIN_DUMP.get(cls)  # ``payload_of``, inlined: once per artifact
    if plain is None:
        plain = plain_dump(cls)
    try:
        payload: dict[str, Any] = (
            obj.__pydantic_serializer__.to_python(obj, mode="json")
            if plain
            else obj.model_dump(mode="json")
        )
    except (PydanticSerializationError, UnicodeDecodeError) as exc:
        why = " ".join(str(exc).split())
        if isinstance(exc, UnicodeDecodeError):  # a ``bytes`` field: written as UTF-8
            why += " (bytes that are not UTF-8: ser_json_bytes='base64' in the model's config)"
        raise PayloadNotJson(f"{name} does not serialise to JSON: {why}") from exc
    if cls not in NOTHING_TO_CHECK and (problem := payload_problem(cls, payload)):
        raise PayloadNotJson(f"{problem}: {NOT_JSON}")
    try:
        # What a resume or replay rebuilds the object from, checked as they check it
        # (``registry.to_object``): an object whose field was assigned after it was
        # made (pydantic checks assignments only with ``validate_assignment=True``)
        # committed, then could not be rebuilt, and the run could never resume.
        cls.__pydantic_validator__.validate_python(payload)
    except ValidationError as exc:
        raise PayloadInvalid(
            f"{name} is not valid: {first_problem(exc)} (a field assigned after the "
            "object was made? pydantic checks assignments only with validate_assignment=True)"
        ) from None
    return payload


def check_payloads(outputs: list[BaseModel]) -> None:
    """Raise ``PayloadNotJson`` for the first of ``outputs`` the live run would refuse."""
    for obj in outputs:
        cls = type(obj)
        checked_payload(obj, cls, type_name(cls))
