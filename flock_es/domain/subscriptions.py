"""Subscriptions: what an agent consumes, and the pure checks that match an artifact."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from flock_es.domain.events import SubscriptionSpec
from flock_es.errors import DefinitionError

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
    ) -> Subscription:
        if not types:
            raise DefinitionError(f"agent {agent!r}: .consumes() needs at least one type")
        for t in types:
            if not (isinstance(t, type) and issubclass(t, BaseModel)):
                raise DefinitionError(
                    f"agent {agent!r}: .consumes() takes pydantic model classes, got {t!r}"
                )
        if len(types) > 1:
            raise DefinitionError(
                f"agent {agent!r}: consuming several types at once (an AND gate) "
                "is not supported yet; use one .consumes() per type"
            )
        preds: tuple[Predicate, ...]
        if where is None:
            preds = ()
        elif callable(where):
            preds = (where,)
        else:
            preds = tuple(where)
        for p in preds:
            if not callable(p):
                raise DefinitionError(f"agent {agent!r}: where= must be callable, got {p!r}")
        return cls(
            agent=agent,
            index=index,
            types=tuple(t.__name__ for t in types),
            where=preds,
            from_agents=frozenset([from_agents] if isinstance(from_agents, str) else from_agents or ()),
            tags=frozenset([tags] if isinstance(tags, str) else tags or ()),
            batch=BatchSpec.coerce(batch),
            where_text=tuple(_describe(p) for p in preds),
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
        )
