"""Flock's store queries on ``flock.store`` and ``ctx.store``, answered from the log.

``get``, ``list_by_type``, ``query_artifacts``, ``summarize_artifacts``,
``agent_history_summary`` and the consumption records follow flock-core 0.5.7's
``BlackboardStore``; the SQL lives in ``flock_es.log.queries`` and reads the
indexed read models of the run's database. The differences from flock-core
(each one a flock-core bug or wart) are listed in ``docs/store.md``.

Example::

    page, total = await flock.store.query_artifacts(type=Idea, tags={"urgent"}, limit=10)
    summary = await flock.store.summarize_artifacts()
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel

from flock_es.domain import registry
from flock_es.domain.visibility import Identity
from flock_es.log.queries import BoardQueries
from flock_es.log.query_values import ArtifactFilter, StoredArtifact

if TYPE_CHECKING:
    from flock_es.runtime.store import Artifact

__all__ = [
    "ArtifactEnvelope",
    "BoardSource",
    "ConsumptionRecord",
    "FilterConfig",
    "QueryResult",
    "StoreQueries",
]

TimeLike = datetime | float | int
TypeLike = type[BaseModel] | str


@dataclass(slots=True)
class FilterConfig:
    """Flock's filter object, field for field (``start``/``end``: datetimes or epoch seconds).

    Example: ``await flock.store.query_artifacts(FilterConfig(type_names={"Idea"}))``.
    """

    type_names: set[str] | None = None
    produced_by: set[str] | None = None
    correlation_id: str | None = None
    tags: set[str] | None = None
    visibility: set[str] | None = None
    start: TimeLike | None = None
    end: TimeLike | None = None


@dataclass(frozen=True, slots=True)
class ConsumptionRecord:
    """Agent ``consumer`` took ``artifact_id`` as an input of task ``task_id``.

    Recorded with the task's ``task.scheduled`` event (same transaction), so a
    consumption is never lost or half-written; ``consumed_at`` is when it was scheduled.
    """

    artifact_id: str
    consumer: str
    task_id: str
    run_id: str
    consumed_at: datetime
    seq: int


@dataclass(slots=True)
class ArtifactEnvelope:
    """An artifact with its consumption records (``query_artifacts(embed_meta=True)``)."""

    artifact: Artifact
    consumptions: list[ConsumptionRecord] = field(default_factory=list)


class QueryResult(NamedTuple):
    """A page and the number of matches in all; unpacks like flock-core's tuple."""

    items: list[Any]
    total: int


class BoardSource:
    """Where a run's board lives: its database and run id. Opens one reader, lazily,
    closed when the source is garbage-collected (or by ``close``)."""

    def __init__(self, db: Path | str, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self._board: BoardQueries | None = None

    def queries(self) -> BoardQueries | None:
        """The queries, or None while the run has no database yet (nothing published)."""
        if self._board is None:
            if isinstance(self.db, Path) and not self.db.exists():
                return None
            from flock_es.log.backends import open_reader

            reader = open_reader(self.db)
            self._board = BoardQueries(reader)
            weakref.finalize(self, reader.close)
        return self._board

    def close(self) -> None:
        if self._board is not None:
            self._board.reader.close()
            self._board = None


def _epoch(t: TimeLike | None) -> float | None:
    if t is None or isinstance(t, int | float):
        return None if t is None else float(t)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _names(values: Iterable[TypeLike] | TypeLike | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str | type):
        values = [values]
    return tuple(sorted({registry.type_name(v) for v in values}))


def _strs(values: Iterable[str] | str | None) -> tuple[str, ...]:
    if values is None:
        return ()
    return (values,) if isinstance(values, str) else tuple(sorted(set(values)))


def _record(c: Any) -> ConsumptionRecord:
    at = datetime.fromtimestamp(c.consumed_at, UTC)
    return ConsumptionRecord(c.artifact_id, c.agent, c.task_id, c.run_id, at, c.seq)


class StoreQueries:
    """The query half of ``Store`` and ``AgentStore`` (mixed in).

    Subclasses say where the board is (``_source``), who asks (``_viewer``: None for
    the orchestrator, which sees everything) and up to which seq (``_until_seq``).
    """

    def _source(self) -> BoardSource | None:
        raise NotImplementedError

    def _viewer(self) -> Identity | None:
        return None

    def _until_seq(self) -> int | None:
        return None

    def _hide_tag(self) -> str | None:
        from flock_es.runtime.kernel import UNPUBLISHED_TAG

        return UNPUBLISHED_TAG

    def _filter(self, filters: FilterConfig | None, **kw: Any) -> ArtifactFilter:
        f = filters or FilterConfig()
        source = self._source()
        return ArtifactFilter(
            run_id=source.run_id if source else None,
            types=_names(kw.get("type")) or _names(f.type_names),
            produced_by=_strs(kw.get("produced_by")) or _strs(f.produced_by),
            correlation_id=kw.get("correlation_id") or f.correlation_id,
            tags=_strs(kw.get("tags")) or _strs(f.tags),
            visibility=_strs(kw.get("visibility")) or _strs(f.visibility),
            since=_epoch(kw.get("since")) if kw.get("since") is not None else _epoch(f.start),
            until=_epoch(kw.get("until")) if kw.get("until") is not None else _epoch(f.end),
            exclude_tag=self._hide_tag(),
            until_seq=self._until_seq(),
        )

    def _board(self) -> BoardQueries | None:
        source = self._source()
        return source.queries() if source is not None else None

    def _artifact(self, s: StoredArtifact) -> Artifact:
        from flock_es.runtime.store import Artifact

        return Artifact(s.id, s.type, s.payload, s.produced_by, s.correlation_id, s.tags, s.ts)

    async def get(self, artifact_id: str) -> Artifact | None:
        """The artifact with this id, or None (also when the caller may not see it).

        Example: ``art = await flock.store.get(ids[0])``.
        """
        board = self._board()
        if board is None:
            return None
        found = board.artifact(str(artifact_id), self._filter(None), self._viewer())
        return self._artifact(found) if found is not None else None

    async def list_by_type(self, type_or_name: TypeLike) -> list[Artifact]:
        """Every artifact of a type (a class or its registered name), in publication order.

        Example: ``ideas = await flock.store.list_by_type("Idea")``.
        """
        page, _ = await self.query_artifacts(type=type_or_name, limit=None)
        return list(page)

    async def query_artifacts(
        self,
        filters: FilterConfig | None = None,
        *,
        type: Iterable[TypeLike] | TypeLike | None = None,
        produced_by: Iterable[str] | str | None = None,
        tags: Iterable[str] | str | None = None,
        correlation_id: str | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        visibility: Iterable[str] | str | None = None,
        limit: int | None = 50,
        offset: int = 0,
        embed_meta: bool = False,
    ) -> QueryResult:
        """A page of matching artifacts in publication order, and the number of matches.

        Keywords and a Flock ``FilterConfig`` both work (a keyword wins). ``tags``:
        artifacts carrying all of them. ``limit=None``: no limit. ``embed_meta``:
        ``ArtifactEnvelope`` items with their consumption records.

        Example::

            page, total = await flock.store.query_artifacts(type=Idea, produced_by="writer")
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be None or >= 0, got {limit}")
        board = self._board()
        if board is None:
            return QueryResult([], 0)
        f = self._filter(
            filters,
            type=type,
            produced_by=produced_by,
            tags=tags,
            correlation_id=correlation_id,
            since=since,
            until=until,
            visibility=visibility,
        )
        rows, total = board.artifacts(f, limit=limit, offset=offset, viewer=self._viewer())
        arts = [self._artifact(s) for s in rows]
        if not embed_meta:
            return QueryResult(arts, total)
        records = await self.consumptions([a.id for a in arts]) if arts else []
        by_id: dict[str, list[ConsumptionRecord]] = {}
        for r in records:
            by_id.setdefault(r.artifact_id, []).append(r)
        return QueryResult([ArtifactEnvelope(a, by_id.get(a.id, [])) for a in arts], total)

    async def summarize_artifacts(
        self, filters: FilterConfig | None = None, **keywords: Any
    ) -> dict[str, Any]:
        """Counts by type, producer, visibility kind and tag, and the time span.

        Takes the filters of ``query_artifacts``. Example::

            s = await flock.store.summarize_artifacts(type=Idea)
            print(s["total"], s["by_producer"])
        """
        board = self._board()
        if board is None:
            return BoardQueries.empty_summary()
        return board.summary(self._filter(filters, **keywords), self._viewer())

    async def consumptions(
        self, artifact_ids: Iterable[str] | str | None = None, *, agent: str | None = None
    ) -> list[ConsumptionRecord]:
        """Which task (and agent) took which artifact as an input, in scheduling order.

        Example: ``[r.consumer for r in await flock.store.consumptions(idea_id)]``.
        """
        board, source = self._board(), self._source()
        if board is None or source is None:
            return []
        ids = [artifact_ids] if isinstance(artifact_ids, str) else artifact_ids
        rows = board.consumptions(
            source.run_id,
            artifact_ids=None if ids is None else list(ids),
            agent=agent,
            viewer=self._viewer(),
        )
        bound = self._until_seq()
        return [_record(c) for c in rows if bound is None or c.seq <= bound]

    async def agent_history_summary(self, agent_id: str) -> dict[str, Any]:
        """What ``agent_id`` produced and consumed in this run, by type.

        Example: ``h = await flock.store.agent_history_summary("writer")``.
        """
        board, source = self._board(), self._source()
        if board is None or source is None:
            return {
                "produced": {"total": 0, "by_type": {}},
                "consumed": {"total": 0, "by_type": {}},
            }
        return board.agent_history(source.run_id, agent_id, self._viewer())
