"""An export, and an import, stream the run's events: their memory does not grow
with the run (issue 14).

An export held the whole run before writing the first line: 432 MB for the
520,000 events of a 20,000-artifact run of workload (b), against 48 MB now, for
the same bytes. What only the end can show (the count, the last seq) is checked
there. An import of that file held it whole too (1.18 GB); it now checks the file
first, then streams it into one transaction (62 MB).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flock_es.log.export import export_to_file, import_run, read_export
from flock_es.log.ports import open_store
from tests.conftest import traced
from tests.test_bounded_lookups import N, _log


@pytest.mark.slow  # a scale test: a log of 24,579 artifacts (5-9 s)
async def test_an_export_streams_the_run(tmp_path: Path) -> None:
    db, out = tmp_path / "cards.db", tmp_path / "cards.jsonl"
    run, ids, _ = await _log(db)
    with open_store(db).reader() as reader:
        n, _, peak = traced(lambda: export_to_file(reader, run, out))
    assert n > N
    # Held whole, these events took some 30 MB; a page of them takes a few.
    assert peak < 8 << 20, f"peak {peak / 1e6:.1f} MB"
    run_id, events = read_export(out)
    assert run_id == run and len(events) == n
    published = [e.body["id"] for e in events if e.kind.value == "artifact.published"]
    assert published == ids


@pytest.mark.slow  # a scale test: a log of 24,579 artifacts (5-9 s)
def test_an_import_streams_the_export(tmp_path: Path) -> None:
    import asyncio

    db, out, into = tmp_path / "cards.db", tmp_path / "cards.jsonl", tmp_path / "into.db"
    run, _, _ = asyncio.run(_log(db))
    with open_store(db).reader() as reader:
        n = export_to_file(reader, run, out)
    imported, _, peak = traced(lambda: import_run(out, into))
    assert imported == (run, n)
    # Held whole, the file's events took 96 MB; streamed, a few chunks of them (10 MB).
    assert peak < 24 << 20, f"peak {peak / 1e6:.1f} MB"
    with open_store(into).reader() as reader, open_store(db).reader() as source:
        assert [(e.kind, e.body) for e in reader.iter_events(run)] == [
            (e.kind, e.body) for e in source.iter_events(run)
        ]
