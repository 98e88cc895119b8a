"""What ``publish`` accepts: a pydantic model, or (as in Flock) a dict with a ``type``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from flock_es.domain import registry
from flock_es.domain.validation_text import first_problem
from flock_es.errors import ArtifactValidationError

__all__ = ["PublishInput", "as_model"]

PublishInput = BaseModel | Mapping[str, Any]


def as_model(obj: object) -> BaseModel:
    """``obj`` as an instance of its registered type.

    A dict names its type under ``type``; the payload is either under
    ``payload`` or the remaining keys, as in Flock::

        as_model({"type": "Task", "name": "deploy", "priority": 5})
        as_model({"type": "Task", "payload": {"name": "deploy", "priority": 5}})
    """
    if isinstance(obj, BaseModel):
        return obj
    if not isinstance(obj, Mapping):
        raise ArtifactValidationError(
            "publish() takes pydantic model instances or dicts with a 'type' key, "
            f"got {type(obj).__name__}"
        )
    if "type" not in obj:
        raise ArtifactValidationError(
            "a published dict needs a 'type' key, e.g. {'type': 'Task', 'name': 'deploy'}"
        )
    name = str(obj["type"])
    payload = obj["payload"] if "payload" in obj else {k: v for k, v in obj.items() if k != "type"}
    try:
        return registry.to_object(name, dict(payload))
    except ValidationError as exc:
        raise ArtifactValidationError(
            f"published dict of type {name!r} does not validate: {first_problem(exc, 'payload')}"
        ) from None
