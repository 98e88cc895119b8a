"""Pydantic validation of event bodies, built from their ``TypedDict`` definitions.

The definitions in ``flock_es.domain.events`` are the only source: a
``TypeAdapter`` per kind is derived from them on first use (extra keys
forbidden, as the definitions are closed), so importing the events costs
nothing and the hot path never validates. Used for bodies from outside (an
import, a test reading a real log) and for events off the hot path.

Example::

    check_body(EventKind.TASK_STARTED, {"task_id": "t-1", "agent": "a"})  # passes
    check_body(EventKind.TASK_STARTED, {"task": "t-1"})  # raises ValidationError
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from flock_es.domain.events import BODIES, AgentSpec, EventKind, SubscriptionSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import TypeAdapter

__all__ = ["body_adapter", "body_schema", "check_body"]


@cache
def body_adapter(kind: EventKind) -> TypeAdapter[Any]:
    """The pydantic adapter for ``kind``'s body (built once)."""
    from pydantic import ConfigDict, TypeAdapter

    forbid = ConfigDict(extra="forbid")
    for definition in (*BODIES.values(), AgentSpec, SubscriptionSpec):
        # The definitions are closed: a stray key is an error, as a misspelt one is for mypy.
        if getattr(definition, "__pydantic_config__", None) is None:
            definition.__pydantic_config__ = forbid  # type: ignore[attr-defined]
    return TypeAdapter(BODIES[kind])


def check_body(kind: EventKind | str, body: Mapping[str, Any]) -> None:
    """Raise ``pydantic.ValidationError`` unless ``body`` fits ``kind``'s definition."""
    body_adapter(EventKind(kind)).validate_python(body)


def body_schema(kind: EventKind) -> dict[str, Any]:
    """The JSON schema of ``kind``'s body."""
    return body_adapter(kind).json_schema()
