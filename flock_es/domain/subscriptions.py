"""Subscriptions: what an agent consumes, and the pure checks that match an artifact."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from flock_es.domain import registry
from flock_es.domain.events import SubscriptionSpec
from flock_es.errors import DefinitionError

__all__ = ["BatchSpec", "JoinSpec", "Predicate", "Subscription"]

Predicate = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """Collect artifacts and hand them to the agent together.

    The batch fires when ``size`` artifacts are buffered, or ``timeout`` after the
    first one arrived, whichever comes first. ``timeout`` takes a timedelta or seconds.

    Example::

        editor.consumes(NewsAnalysis, batch=BatchSpec(size=8, timeout=timedelta(seconds=30)))
    """

    size: int | None = None
    timeout: timedelta | float | None = None

    def __post_init__(self) -> None:
        if self.size is None and self.timeout is None:
            raise DefinitionError("BatchSpec needs a size, a timeout, or both")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 1):
            raise DefinitionError(f"BatchSpec size must be a positive integer, got {self.size!r}")
        seconds = self.timeout_seconds
        if seconds is not None and seconds <= 0:
            raise DefinitionError(f"BatchSpec timeout must be positive, got {self.timeout!r}")

    @property
    def timeout_seconds(self) -> float | None:
        if self.timeout is None:
            return None
        if isinstance(self.timeout, timedelta):
            return self.timeout.total_seconds()
        return float(self.timeout)

    @classmethod
    def coerce(cls, value: BatchSpec | dict[str, Any] | None) -> BatchSpec | None:
        if value is None or isinstance(value, BatchSpec):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"size", "timeout"}
            if unknown:
                raise DefinitionError(f"unknown BatchSpec field(s): {', '.join(sorted(unknown))}")
            return cls(size=value.get("size"), timeout=value.get("timeout"))
        raise DefinitionError(f"batch= takes a BatchSpec or a dict, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class JoinSpec:
    """Correlate an AND gate on a key taken from each artifact's payload.

    ``by(obj)`` gives the key; only artifacts with equal keys fire together.
    ``within`` bounds how long a group may wait for its missing members: a
    timedelta (or seconds as a float) is a time window, an int is a count window
    (the group expires once that many more artifacts reached this gate). An
    expired group is recorded as a ``join.expired`` event and its members leave
    the gate.

    Example::

        fuser.consumes(XRay, LabResult, join=JoinSpec(by=lambda r: r.patient_id,
                                                    within=timedelta(minutes=5)))
    """

    by: Callable[[Any], Any]
    within: timedelta | float | int | None = None

    def __post_init__(self) -> None:
        if not callable(self.by):
            raise DefinitionError(f"JoinSpec by= must be callable, got {self.by!r}")
        w = self.within
        if w is None:
            return
        if isinstance(w, bool) or not isinstance(w, timedelta | int | float):
            raise DefinitionError(f"JoinSpec within= takes a timedelta or a count, got {w!r}")
        if (w.total_seconds() if isinstance(w, timedelta) else w) <= 0:
            raise DefinitionError(f"JoinSpec within= must be positive, got {w!r}")

    @property
    def window_seconds(self) -> float | None:
        """The time window, or None for a count window or no window."""
        if isinstance(self.within, timedelta):
            return self.within.total_seconds()
        if isinstance(self.within, float):
            return self.within
        return None

    @property
    def window_count(self) -> int | None:
        """The count window, or None for a time window or no window."""
        return self.within if isinstance(self.within, int) else None

    def key(self, obj: Any) -> str:
        return str(self.by(obj))


def _describe(fn: Predicate) -> str:
    try:
        src = inspect.getsource(fn).strip()
    except (OSError, TypeError):
        src = ""
    if "lambda" in src:
        src = src[src.index("lambda") :]
        depth = 0
        for i, ch in enumerate(src):
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                if depth == 0:
                    return src[:i].strip().rstrip(",")
                depth -= 1
            elif ch == "," and depth == 0:
                return src[:i].strip()
        return src.splitlines()[0]
    return getattr(fn, "__qualname__", repr(fn))


@dataclass(slots=True)
class Subscription:
    """One ``.consumes(...)`` of an agent. ``index`` is its position on the agent."""

    agent: str
    index: int
    types: tuple[str, ...]
    where: tuple[Predicate, ...] = ()
    from_agents: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    batch: BatchSpec | None = None
    where_text: tuple[str, ...] = field(default=())
    join: JoinSpec | None = None
    priority: int = 0
    # How many of each type one firing takes: ("A", "A", "B") needs {"A": 2, "B": 1}.
    need: dict[str, int] = field(default_factory=dict)

    # Several inputs per firing (an AND or count gate, or a join); set by ``build``.
    gated: bool = False

    @classmethod
    def build(
        cls,
        agent: str,
        index: int,
        types: Sequence[type[BaseModel]],
        where: Predicate | Iterable[Predicate] | None,
        from_agents: Iterable[str] | str | None,
        tags: Iterable[str] | str | None,
        batch: BatchSpec | dict[str, Any] | None,
        join: JoinSpec | None = None,
        priority: int = 0,
    ) -> Subscription:
        if not types:
            raise DefinitionError(f"agent {agent!r}: .consumes() needs at least one type")
        for t in types:
            if not (isinstance(t, type) and issubclass(t, BaseModel)):
                raise DefinitionError(
                    f"agent {agent!r}: .consumes() takes pydantic model classes, got {t!r}"
                )
        if join is not None and not isinstance(join, JoinSpec):
            raise DefinitionError(f"agent {agent!r}: join= takes a JoinSpec, got {join!r}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise DefinitionError(
                f"agent {agent!r}: priority= must be an integer, got {priority!r}"
            )
        names = tuple(registry.type_name(t) for t in types)
        need: dict[str, int] = {}
        for n in names:
            need[n] = need.get(n, 0) + 1
        preds: tuple[Predicate, ...]
        if where is None:
            preds = ()
        elif callable(where):
            preds = (where,)
        elif isinstance(where, Iterable) and not isinstance(where, str | bytes):
            preds = tuple(where)
        else:
            raise DefinitionError(f"agent {agent!r}: where= must be callable, got {where!r}")
        for p in preds:
            if not callable(p):
                raise DefinitionError(f"agent {agent!r}: where= must be callable, got {p!r}")
        return cls(
            agent=agent,
            index=index,
            types=names,
            where=preds,
            from_agents=frozenset(
                [from_agents] if isinstance(from_agents, str) else from_agents or ()
            ),
            tags=frozenset([tags] if isinstance(tags, str) else tags or ()),
            batch=BatchSpec.coerce(batch),
            where_text=tuple(_describe(p) for p in preds),
            join=join,
            priority=priority,
            need=need,
            gated=len(names) > 1 or join is not None,
        )

    def routes(self, produced_by: str, tags: Iterable[str]) -> bool:
        """The cheap, non-user-code checks: producer and tags."""
        if self.from_agents and produced_by not in self.from_agents:
            return False
        return not (self.tags and not self.tags.intersection(tags))

    def spec(self) -> SubscriptionSpec:
        return SubscriptionSpec(
            index=self.index,
            types=list(self.types),
            where=list(self.where_text),
            from_agents=sorted(self.from_agents),
            tags=sorted(self.tags),
            batch_size=self.batch.size if self.batch else None,
            batch_timeout=self.batch.timeout_seconds if self.batch else None,
            join_by=_describe(self.join.by) if self.join else None,
            join_window_seconds=self.join.window_seconds if self.join else None,
            join_window_count=self.join.window_count if self.join else None,
            priority=self.priority,
        )
