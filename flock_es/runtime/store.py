"""The blackboard as a program sees it: the artifacts of the current run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from flock_es.domain import registry
from flock_es.domain.visibility import Identity, visible_to
from flock_es.runtime.artifacts import RunArtifacts
from flock_es.runtime.board_queries import BoardSource, StoreQueries
from flock_es.runtime.kernel import UNPUBLISHED_TAG

if TYPE_CHECKING:
    from flock_es.projection.state import ArtifactView, RunState
    from flock_es.runtime.flock import Flock

__all__ = ["AgentStore", "Artifact", "Store", "artifact_of"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Artifact:
    """An artifact on the blackboard: its payload and where it came from."""

    id: str
    type: str
    payload: dict[str, Any]
    produced_by: str
    correlation_id: str | None
    tags: tuple[str, ...]
    created_at: float
    # Flock's sharding label, from publish(partition_key=); outputs do not inherit it.
    partition_key: str | None = None

    @property
    def obj(self) -> BaseModel:
        """The payload as an instance of its registered pydantic type."""
        return registry.to_object(self.type, self.payload)


class Store(StoreQueries):
    """Queries over the current run's artifacts.

    ``get_artifacts_by_type``, ``get_by_type`` and ``list`` read the run's folded
    state; Flock's store queries (``get``, ``list_by_type``, ``query_artifacts``,
    ``summarize_artifacts``, ``consumptions``; see ``StoreQueries``) read the
    run's indexed read models in its database.

    Example::

        analyses = await flock.store.get_artifacts_by_type("NewsAnalysis")
        digests = await flock.store.get_by_type(NewsDigest)
        page, total = await flock.store.query_artifacts(type=NewsDigest, limit=5)
    """

    def __init__(self, flock: Flock) -> None:
        self._flock = flock
        self._board_source: BoardSource | None = None

    def _source(self) -> BoardSource:
        flock = self._flock
        src = self._board_source
        if src is None or src.run_id != flock.run_id or src.db != flock.db_path:
            src = self._board_source = BoardSource(flock.db_path, flock.run_id)
        return src

    def _views(self, type_or_name: type[BaseModel] | str | None) -> list[Artifact]:
        name = None if type_or_name is None else registry.type_name(type_or_name)
        views = self._flock.artifacts().of_type(name)
        return [artifact_of(v) for v in views if UNPUBLISHED_TAG not in v.tags]

    async def get_artifacts_by_type(self, type_or_name: type[BaseModel] | str) -> list[Artifact]:
        """Artifacts of a type (a class or its name), in publication order."""
        return self._views(type_or_name)

    async def get_by_type(self, cls: type[M]) -> list[M]:
        """The payloads of a type, as instances of ``cls``."""
        return [cls.model_validate(a.payload) for a in self._views(cls)]

    async def list(self) -> list[Artifact]:
        """Every artifact of the run, by type (in the order the types first appeared),
        each type's in publication order."""
        return self._views(None)


def artifact_of(v: ArtifactView) -> Artifact:
    return Artifact(
        v.id,
        v.type,
        v.payload,
        v.produced_by,
        v.correlation_id,
        tuple(v.tags),
        v.ts,
        v.partition_key,
    )


class AgentStore(StoreQueries):
    """The blackboard as one agent may see it: ``ctx.store`` inside an agent function.

    Every query is filtered by the agent's visibility (name, labels, tenant), so an
    agent can never read a private artifact of another agent through the store.
    Flock's store queries (``query_artifacts`` and the rest) see the board as it
    stood when the task's last input was published (``until_seq``), so a resumed
    or replayed task gets the same answer as the live one.

    Example::

        async def review(draft: Draft, ctx: AgentContext) -> Review:
            notes = await ctx.store.get_by_type(Note)   # only notes this agent may see
    """

    def __init__(
        self,
        state: Callable[[], RunState],
        who: Identity,
        board: BoardSource | None = None,
        until_seq: int | None = None,
    ) -> None:
        self._state = state
        self._who = who
        self._board_source = board
        self._bound = until_seq

    def _source(self) -> BoardSource | None:
        return self._board_source

    def _viewer(self) -> Identity | None:
        return self._who

    def _until_seq(self) -> int | None:
        return self._bound

    def _views(self, type_or_name: type[BaseModel] | str | None) -> list[Artifact]:
        name = None if type_or_name is None else registry.type_name(type_or_name)
        out = []
        # The state's views, else the log's (a compact state lets go of durable ones).
        for v in RunArtifacts(self._state(), self._board_source).of_type(name):
            if UNPUBLISHED_TAG in v.tags or not visible_to(v.visibility, self._who, v.released):
                continue
            out.append(artifact_of(v))
        return out

    async def get_artifacts_by_type(self, type_or_name: type[BaseModel] | str) -> list[Artifact]:
        """Visible artifacts of a type, in publication order."""
        return self._views(type_or_name)

    async def get_by_type(self, cls: type[M]) -> list[M]:
        """Visible payloads of a type, as instances of ``cls``."""
        return [cls.model_validate(a.payload) for a in self._views(cls)]

    async def list(self) -> list[Artifact]:
        """Every artifact of the run this agent may see."""
        return self._views(None)
