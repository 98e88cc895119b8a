"""The values the store queries take and give (``flock_es.log.queries``).

``ArtifactFilter`` says what to select; ``StoredArtifact`` is an artifact as the
read model holds it, and ``Consumption`` a task's taking of one as an input.
Plain frozen data: the runtime's store (``flock_es.runtime.board_queries``)
builds the filters and turns the results into ``Artifact``s.

Example::

    ArtifactFilter(run_id="r-1", types=("Idea",), tags=("urgent",))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ArtifactFilter", "Consumption", "StoredArtifact"]


@dataclass(frozen=True, slots=True)
class ArtifactFilter:
    """What to select; every field left empty selects everything.

    ``tags``: artifacts carrying all of them. ``since``/``until``: publication time
    (epoch seconds, inclusive). ``visibility``: visibility kinds. ``exclude_tag``:
    leave out artifacts carrying it. ``until_seq``: the board as it stood at a seq.
    """

    run_id: str | None = None
    types: tuple[str, ...] = ()
    produced_by: tuple[str, ...] = ()
    correlation_id: str | None = None
    tags: tuple[str, ...] = ()
    visibility: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    exclude_tag: str | None = None
    until_seq: int | None = None


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """One artifact as the read model holds it (``ts``: when it was published)."""

    id: str
    run_id: str
    type: str
    payload: dict[str, Any]
    produced_by: str
    task_id: str | None
    correlation_id: str | None
    tags: tuple[str, ...]
    visibility: dict[str, Any]
    released: bool
    seq: int
    ts: float


@dataclass(frozen=True, slots=True)
class Consumption:
    """Task ``task_id`` of ``agent`` took ``artifact_id`` as an input (``task.scheduled``
    at ``seq``, time ``consumed_at``)."""

    run_id: str
    artifact_id: str
    task_id: str
    agent: str
    seq: int
    consumed_at: float
