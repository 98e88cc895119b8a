"""Who may see an artifact: the visibility kinds of Flock, and the one check that enforces them.

A visibility is stored on the artifact as a small dict (``{"kind": "private",
"agents": [...]}``), so a reader of the log can apply the same rule without user
code. ``visible_to`` is the only place the rule lives: scheduling, the context
given to a model and store queries made on an agent's behalf all call it.

Example::

    flock.agent("auditor").labels("clearance:secret")
    flock.agent("writer").consumes(Draft).publishes(
        Report, visibility=LabelledVisibility(required_labels={"clearance:secret"})
    )
    await flock.publish(Memo(...), visibility=PrivateVisibility(agents={"auditor"}))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flock_es.errors import DefinitionError

__all__ = [
    "PUBLIC",
    "AfterVisibility",
    "Identity",
    "LabelledVisibility",
    "PrivateVisibility",
    "PublicVisibility",
    "TenantVisibility",
    "Visibility",
    "VisibilityLike",
    "to_dict",
    "visible_to",
]

PUBLIC: dict[str, Any] = {"kind": "public"}


@dataclass(frozen=True, slots=True)
class Identity:
    """What an agent is, for visibility: its name, labels and tenant."""

    name: str
    labels: frozenset[str] = frozenset()
    tenant: str | None = None


class Visibility:
    """Base class of the visibility kinds; ``to_dict`` is what the log stores."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class PublicVisibility(Visibility):
    """Every agent sees it (the default)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(PUBLIC)


@dataclass(frozen=True, slots=True)
class PrivateVisibility(Visibility):
    """Only the named agents see it."""

    agents: frozenset[str] = field(default_factory=frozenset)

    def __init__(self, agents: Iterable[str] | str = ()) -> None:
        names = frozenset([agents] if isinstance(agents, str) else agents)
        object.__setattr__(self, "agents", names)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "private", "agents": sorted(self.agents)}


@dataclass(frozen=True, slots=True)
class LabelledVisibility(Visibility):
    """Only agents that carry every one of ``required_labels`` (see ``.labels(...)``)."""

    required_labels: frozenset[str] = field(default_factory=frozenset)

    def __init__(self, required_labels: Iterable[str] | str = ()) -> None:
        labels = frozenset(
            [required_labels] if isinstance(required_labels, str) else required_labels
        )
        object.__setattr__(self, "required_labels", labels)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "labelled", "labels": sorted(self.required_labels)}


@dataclass(frozen=True, slots=True)
class TenantVisibility(Visibility):
    """Only agents of the same tenant (see ``.tenant(...)``)."""

    tenant_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "tenant", "tenant": self.tenant_id}


@dataclass(frozen=True, slots=True)
class AfterVisibility(Visibility):
    """Hidden from every agent for ``ttl``, then visible as ``then``.

    The release is a recorded event (``artifact.released``) decided by a timer, so a
    resumed or replayed run releases the same artifact at the same point of the log.
    """

    ttl: timedelta | float
    then: Visibility = field(default_factory=PublicVisibility)

    def __post_init__(self) -> None:
        if self.ttl_seconds < 0:
            raise DefinitionError(f"AfterVisibility ttl must not be negative, got {self.ttl!r}")

    @property
    def ttl_seconds(self) -> float:
        return self.ttl.total_seconds() if isinstance(self.ttl, timedelta) else float(self.ttl)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "after", "ttl": self.ttl_seconds, "then": self.then.to_dict()}


VisibilityLike = Visibility | Mapping[str, Any] | None

_KINDS = {"public", "private", "labelled", "tenant", "after"}


def to_dict(value: VisibilityLike) -> dict[str, Any]:
    """The stored form of a visibility (a ``Visibility``, its dict form, or None = public)."""
    if value is None:
        return dict(PUBLIC)
    if isinstance(value, Visibility):
        return value.to_dict()
    if isinstance(value, Mapping):
        kind = value.get("kind")
        if kind not in _KINDS:
            raise DefinitionError(
                f"unknown visibility kind {kind!r}; expected one of {', '.join(sorted(_KINDS))}"
            )
        return dict(value)
    raise DefinitionError(f"visibility= takes a Visibility, got {type(value).__name__}")


def visible_to(vis: Mapping[str, Any], who: Identity, released: bool = False) -> bool:
    """May ``who`` see an artifact with visibility ``vis``?

    ``released`` says whether an ``after`` visibility has been released (its
    ``artifact.released`` event is in the log); time itself is never read here.
    """
    kind = vis.get("kind", "public")
    if kind == "public":
        return True
    if kind == "private":
        return who.name in set(vis.get("agents", ()))
    if kind == "labelled":
        return set(vis.get("labels", ())).issubset(who.labels)
    if kind == "tenant":
        return who.tenant is not None and who.tenant == str(vis.get("tenant"))
    if kind == "after":
        return released and visible_to(vis.get("then", PUBLIC), who, True)
    return False  # an unknown kind hides: failing closed never leaks
