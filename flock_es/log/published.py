"""A run's ``artifact.published`` events, found through the ``artifacts`` read model.

The runtime's compact state lets go of an artifact's view once it is durable and
nothing pending refers to it (DESIGN.md: memory does not hold every payload once
it is durable); whoever asks for it later gets it from here: by id, by type, by
correlation, or all of the run's, each up to a seq (the state's position, so a
replay never sees what its walk has not reached). The events are read whole,
upcast like every other read, so a view built from one equals the fold's.

Example::

    board = BoardQueries(reader)
    [event] = published(board, run_id, until_seq=state.last_seq, ids=["a-1"])
"""

from __future__ import annotations

from collections.abc import Sequence

from flock_es.domain.events import Event
from flock_es.log.queries import BoardQueries
from flock_es.log.query_models import by_key

__all__ = ["KEYS_AT_ONCE", "published"]

KEYS_AT_ONCE = 500
"""Ids one statement looks up (SQLite binds at most 32,766 arguments; epochs come too)."""


def published(
    board: BoardQueries,
    run_id: str,
    until_seq: int,
    *,
    ids: Sequence[str] | None = None,
    type_name: str | None = None,
    correlation_id: str | None = None,
) -> list[Event]:
    """The ``artifact.published`` events of ``run_id`` with ``seq <= until_seq``, in seq
    order: those of ``ids``, else of type ``type_name``, else of ``correlation_id``,
    else every one of the run."""
    rows: list[tuple[object, ...]] = []
    if ids is not None or correlation_id is not None:
        epochs = board.epochs(run_id, until_seq)
        if not epochs:
            return []
        column, keys = ("id", ids) if ids is not None else ("correlation_id", [correlation_id])
        unique = list(dict.fromkeys(keys))
        # An index probe per id, up to KEYS_AT_ONCE ids a statement.
        for at in range(0, len(unique), KEYS_AT_ONCE):
            chunk = unique[at : at + KEYS_AT_ONCE]
            cond = by_key(run_id, column, epochs, bounded=True, keys=len(chunk))
            rows += board.reader.query(
                f"SELECT a.seq FROM artifacts a WHERE a.run_id = ? AND {cond}",
                (run_id, *epochs, *chunk, until_seq),
            )
    elif type_name is not None:
        rows = board.reader.query(
            "SELECT seq FROM artifacts WHERE run_id = ? AND type = ? AND seq <= ? ORDER BY seq",
            (run_id, type_name, until_seq),
        )
    else:
        rows = board.reader.query(
            "SELECT seq FROM artifacts WHERE run_id = ? AND seq <= ? ORDER BY seq",
            (run_id, until_seq),
        )
    seqs = sorted({int(str(r[0])) for r in rows})
    return board.reader.events_at(seqs)
