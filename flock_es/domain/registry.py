"""Registry of artifact types by name, so logged payloads can become objects again."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from flock_es.errors import ArtifactValidationError, DefinitionError

__all__ = ["flock_type", "register", "resolve", "to_object", "type_name"]

M = TypeVar("M", bound=type[BaseModel])

_TYPES: dict[str, type[BaseModel]] = {}


def flock_type(cls: M) -> M:
    """Register a pydantic model as an artifact type, under its class name.

    Example::

        @flock_type
        class BreakingNews(BaseModel):
            headline: str
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        raise DefinitionError(f"@flock_type needs a pydantic BaseModel class, got {cls!r}")
    _TYPES[cls.__name__] = cls
    return cls


def type_name(cls_or_name: type[BaseModel] | str) -> str:
    """The registry name of a type (its class name), given the class or the name."""
    if isinstance(cls_or_name, str):
        return cls_or_name
    return cls_or_name.__name__


def register(cls: type[BaseModel]) -> None:
    """Register a type implicitly (types used in ``consumes``/``publishes``)."""
    _TYPES.setdefault(cls.__name__, cls)


def resolve(name: str) -> type[BaseModel] | None:
    """The registered class for ``name``, or None if this process has not seen it."""
    return _TYPES.get(name)


def to_object(name: str, payload: dict[str, Any]) -> BaseModel:
    """Rebuild a logged payload as an instance of its registered type."""
    cls = _TYPES.get(name)
    if cls is None:
        raise ArtifactValidationError(f"artifact type {name!r} is not registered in this program")
    return cls.model_validate(payload)
