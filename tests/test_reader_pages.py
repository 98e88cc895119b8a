"""A page of events (``events(..., limit=N)``, as a snapshot job reads a run) is fetched
whole before it is decoded: the page's read transaction, during which the run's writer
cannot restart its WAL, does not last the decoding too (a job at the lowest priority
may wait long between two of its events)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import flock_es.log.reader as reader_module
from flock_es.domain.events import Event
from flock_es.log.ports import EventRow, open_store
from tests.test_snapshot_chain import _large_log


def test_a_page_s_read_transaction_ends_before_its_events_are_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "large.db"
    run, evs = _large_log(db, 30)
    writer = sqlite3.connect(db, timeout=0)
    writer.execute("PRAGMA wal_autocheckpoint=0")

    def frames(seq: int) -> None:
        """Frames in the WAL that no checkpoint has copied: a reader from now on reads
        the WAL, and restarting it must wait for the reader's transaction to end."""
        writer.execute("INSERT INTO snapshots(run_id, seq, state) VALUES ('r-x', ?, x'00')", (seq,))
        writer.commit()

    busy: list[int] = []
    decode = reader_module.row_to_event

    def decoding(row: EventRow) -> Event | None:
        if not busy:  # while the page's first event is decoded
            busy.append(writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
        return decode(row)

    monkeypatch.setattr(reader_module, "row_to_event", decoding)
    with open_store(db).reader() as log:
        frames(1)
        assert log.events(run) == evs  # a whole run is decoded as it is read
        assert busy == [1]
        frames(2)
        busy.clear()
        assert log.events(run, limit=100) == evs[:100]
        assert busy == [0]
    writer.close()
