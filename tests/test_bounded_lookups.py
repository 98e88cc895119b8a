"""Lookups by id, correlation or tag "as the board stood at seq N" probe, never walk.

A resume reads the views its pending work pins by id, up to the state's seq; replay
and ``show --at`` ask the same way. Beside ``a.run_id = ?``, an outer
``a.seq <= ?`` made SQLite walk the run's index up to the bound and test every row:
18 ms a lookup at 20,000 artifacts, and a resume at that size spent 6 s on it
(issue 14). The bound now goes inside the probe's subquery. These tests check the
plan of every statement such a lookup issues, on a log of several epochs, and that
the bound still holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.log.ports import EventReader, open_store
from flock_es.log.published import KEYS_AT_ONCE, published
from flock_es.log.queries import BoardQueries
from flock_es.log.query_models import EPOCH_BITS
from flock_es.log.query_values import ArtifactFilter

N = 3 * (1 << EPOCH_BITS)  # artifacts: the run spans several epochs


@flock_type
class Card(BaseModel):
    n: int


async def _log(db: Path) -> tuple[str, list[str], int]:
    """A run of ``N`` cards in two publishes (the second tagged and correlated); its id,
    the cards' ids and the seq the first publish ended at."""
    flock = Flock(db=db)
    await flock.start()
    first = await flock.publish_many([Card(n=i) for i in range(N)])
    await flock.run_until_idle()
    with open_store(db).reader() as reader:
        middle = reader.last_seq()
    second = await flock.publish_many(
        [Card(n=N + i) for i in range(3)], tags={"late"}, correlation_id="c-late"
    )
    await flock.run_until_idle()
    # The run's compact state let go of most views: these merge the log's and its own.
    arts = flock.artifacts()
    assert [v.id for v in arts.of_correlation("c-late")] == second
    assert [v.id for v in arts.of_type("Card")] == [*first, *second]
    run = flock.run_id
    await flock.close()
    return run, [*first, *second], middle


@contextmanager
def _statements(reader: EventReader) -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    """Every query ``reader`` runs meanwhile, with its arguments."""
    seen: list[tuple[str, tuple[object, ...]]] = []
    query = reader.query

    def recording(sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        seen.append((sql, args))
        return query(sql, args)

    reader.query = recording  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        reader.query = query  # type: ignore[method-assign]


def _walks(db: Path, statements: list[tuple[str, tuple[object, ...]]]) -> list[str]:
    """The plan lines that read ``artifacts a`` other than by its key (a walk or a scan)."""
    con = sqlite3.connect(db)
    try:
        bad = []
        for sql, args in statements:
            if "artifacts a" not in sql:
                continue
            for row in con.execute(f"EXPLAIN QUERY PLAN {sql}", args):
                line = str(row[3])
                if line.startswith(("SEARCH a ", "SCAN a")) and "rowid=?" not in line:
                    bad.append(f"{line}  <- {sql}")
        return bad
    finally:
        con.close()


@pytest.mark.slow  # a scale test: a log of 24,579 artifacts (5-9 s)
async def test_bounded_lookups_probe_the_key_and_keep_the_bound(tmp_path: Path) -> None:
    db = tmp_path / "cards.db"
    run, ids, middle = await _log(db)
    late = ids[N:]
    with open_store(db).reader() as reader:
        board = BoardQueries(reader)
        with _statements(reader) as seen:
            at_middle = published(board, run, middle, ids=[ids[0], ids[N - 1], late[0]])
            by_corr = published(board, run, middle, correlation_id="c-late")
            one = board.artifact(late[0], ArtifactFilter(run_id=run, until_seq=middle))
            kept = board.artifact(ids[5], ArtifactFilter(run_id=run, until_seq=middle))
            corr, _ = board.artifacts(ArtifactFilter(run_id=run, correlation_id="c-late"))
            tagged, _ = board.artifacts(ArtifactFilter(run_id=run, tags=("late",)))
            none_yet, _ = board.artifacts(
                ArtifactFilter(run_id=run, tags=("late",), until_seq=middle)
            )
            corr_then, _ = board.artifacts(
                ArtifactFilter(run_id=run, correlation_id="c-late", until_seq=middle)
            )
        assert _walks(db, seen) == []
        with _statements(reader) as asked:
            many = published(board, run, middle, ids=ids[: 2 * KEYS_AT_ONCE + 7])
        # Many ids (a task's large context): KEYS_AT_ONCE a statement (on PostgreSQL a
        # round trip each), each id still a probe.
        probes = [sql for sql, _ in asked if "artifacts a" in sql]
        assert _walks(db, asked) == [] and len(probes) == 3  # (and the run's epochs)
        # Across runs (no run id): the tag's probe of each row, the bound beside it.
        any_run_then, _ = board.artifacts(ArtifactFilter(tags=("late",), until_seq=middle))
        any_run, _ = board.artifacts(ArtifactFilter(tags=("late",), until_seq=middle + 3))
        untagged, n_untagged = board.artifacts(
            ArtifactFilter(run_id=run, exclude_tag="late", until_seq=middle + 3)
        )
    # The bound holds: what came after ``middle`` is not on the board as it stood then.
    assert [e.body["id"] for e in at_middle] == [ids[0], ids[N - 1]]
    assert [e.body["id"] for e in many] == ids[: 2 * KEYS_AT_ONCE + 7]
    assert by_corr == [] and one is None and none_yet == [] and corr_then == []
    assert kept is not None and kept.payload == {"n": 5}
    assert sorted(a.payload["n"] for a in corr) == sorted(a.payload["n"] for a in tagged)
    assert sorted(a.payload["n"] for a in tagged) == [N, N + 1, N + 2]
    assert any_run_then == [] and sorted(a.payload["n"] for a in any_run) == [N, N + 1, N + 2]
    assert n_untagged == N and all("late" not in a.tags for a in untagged)
    # Each tag condition is made once: by the run's tag index, or by a probe of each row.
    run_tagged = [sql for sql, _ in seen if "FROM artifact_tags" in sql and "a.run_id = ?" in sql]
    assert run_tagged and not any("EXISTS" in sql for sql in run_tagged)
