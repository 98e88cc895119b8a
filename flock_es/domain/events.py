"""The event vocabulary: one enumeration of kinds, one typed body per kind.

The ``TypedDict`` bodies (``event_bodies``, re-exported here) are the single definition of every event's
fields. mypy checks them wherever a body is built (the runtime, ``decide``, the
gates) and wherever one is read (the fold, the read models, ``describe``); a
misspelt key is a type error. At run time a body stays a plain ``dict``, so the
hot path pays nothing for the types. ``NotRequired`` fields may be absent from
a stored body; the comment names the value a reader assumes then.

Pydantic validation of the same definitions, for bodies that come from outside
(imports, old logs, tests), lives in ``flock_es.domain.validate``; it is the only
place that imports pydantic for events.

Example::

    body: TaskStarted = {"task_id": "t-1", "agent": "writer", "attempt": 1}
    event = trusted_event("r-1", EventKind.TASK_STARTED, body, ts=0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

# The kinds and bodies are defined in ``event_kinds`` and ``event_bodies`` and
# re-exported here whole: ``flock_es.domain.events`` is the one place to import them from.
from flock_es.domain import event_bodies, event_kinds
from flock_es.domain.event_bodies import *  # noqa: F403
from flock_es.domain.event_bodies import Body
from flock_es.domain.event_kinds import *  # noqa: F403
from flock_es.domain.event_kinds import EventKind

SCHEMA_VERSION = 1
"""Version stamped on every event; bump it and register an upcaster when a body changes."""

__all__ = [
    *event_bodies.__all__,
    *event_kinds.__all__,
    "SCHEMA_VERSION",
    "Event",
    "body_as",
    "body_field",
    "make_event",
    "trusted_event",
]


B = TypeVar("B")


@dataclass(slots=True)
class Event:
    """One entry of the log. ``seq`` is None until the writer has committed it."""

    run_id: str
    kind: EventKind
    body: dict[str, Any]
    ts: float
    seq: int | None = None
    v: int = SCHEMA_VERSION
    # The characters of its body's JSON where the writer wrote it or a reader read it
    # (0: not known yet): what an artifact weighs in memory (``payload_size``).
    size: int = field(default=0, compare=False, repr=False)

    @property
    def task_id(self) -> str | None:
        tid = self.body.get("task_id")
        return tid if isinstance(tid, str) else None


def body_as(event: Event, definition: type[B]) -> B:
    """``event.body`` seen through its kind's definition (a cast: no copy, no check).

    Example: ``body_as(e, TaskScheduled)["inputs"]`` (mypy knows it is ``list[str]``).
    """
    return event.body  # type: ignore[return-value]  # a cast without cast()'s call


def body_field(definition: type, name: str) -> str:
    """``name``, checked to be a field of ``definition``: how SQL text names body fields.

    SQL is not type-checked, so the log builds its JSON paths through this; a
    renamed field then fails when the log module is imported, not in a query.

    Example: ``f"json_extract(body, '$.{body_field(ModelCalled, 'tokens_in')}')"``
    """
    if name not in definition.__required_keys__ | definition.__optional_keys__:  # type: ignore[attr-defined]
        raise KeyError(f"{definition.__name__} has no field {name!r}")
    return name


def make_event(run_id: str, kind: EventKind, body: Body, ts: float) -> Event:
    """Wrap ``body`` in an event envelope after validating it against ``kind``'s definition.

    For events off the hot path; raises ``pydantic.ValidationError`` on a bad body.
    """
    from flock_es.domain.validate import check_body

    check_body(kind, body)
    return Event(run_id=run_id, kind=kind, body=cast("dict[str, Any]", body), ts=ts)


if TYPE_CHECKING:

    def trusted_event(run_id: str, kind: EventKind, body: Body, ts: float) -> Event:
        """An event whose body the runtime built itself, on the hot path: no validation.

        mypy checks the body against its definition where it is built; a test
        validates every body real runs write, so the two cannot drift apart.
        """
        ...

else:
    # At run time the envelope's own constructor (its parameters are the same, in the
    # same order): no frame of a function around it, three per inline run (issue 14).
    trusted_event = Event
