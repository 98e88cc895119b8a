"""The log contract suite on PostgreSQL (runs when $FLOCK_ES_TEST_PG is set; CI sets it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flock_es.errors import DatabaseError
from flock_es.log import open_store
from flock_es.log.pg_schema import pg_connect
from flock_es.log.ports import EventStore
from flock_es.log.postgres_store import PostgresStore
from flock_es.log.run_counters import COUNTER_COLUMNS
from tests.log_contract import EventStoreContract, started
from tests.pg import pg_url  # noqa: F401  (fixture)
from tests.store_contract import DOWNGRADE_TO_V2


class TestPostgresLog(EventStoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[EventStore]:  # noqa: F811
        yield open_store(pg_url)

    def set_schema_version(self, store: EventStore, version: int) -> None:
        assert isinstance(store, PostgresStore)
        with pg_connect(store.url) as con:
            con.execute(
                "UPDATE flock_es_meta SET value = %s WHERE key = 'schema_version'", (str(version),)
            )

    def downgrade_to_v2(self, store: EventStore) -> None:
        assert isinstance(store, PostgresStore)
        with pg_connect(store.url) as con:
            for stmt in DOWNGRADE_TO_V2:
                con.execute(stmt)  # our own constant statements
        self.set_schema_version(store, 2)

    def drop_counters(self, store: EventStore) -> None:
        assert isinstance(store, PostgresStore)
        with pg_connect(store.url) as con:
            for col in (*COUNTER_COLUMNS, "last_ts", "pid", "host"):
                con.execute(f"ALTER TABLE runs DROP COLUMN {col}")
        self.set_schema_version(store, 8)


def test_a_foreign_database_is_refused_and_untouched(pg_url: str) -> None:  # noqa: F811
    with pg_connect(pg_url) as con:
        con.execute("CREATE TABLE events (x int)")
    store = open_store(pg_url)
    with pytest.raises(DatabaseError, match="not a flock-es database"):
        store.reader()
    with pytest.raises(DatabaseError, match="not a flock-es database"):
        store.claim("r-1")
    with pg_connect(pg_url) as con:
        assert con.execute("SELECT to_regclass('runs')").fetchone() == (None,)


def test_an_empty_database_is_no_log_until_first_write(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    import asyncio

    with pytest.raises(DatabaseError, match="no flock-es database"):
        open_store(pg_url).reader()

    async def write() -> None:
        w = await open_store(pg_url).open_writer()
        await w.append([started()])
        await w.close()

    asyncio.run(write())
    with open_store(pg_url).reader() as r:
        assert r.last_seq() == 1
        assert r.query("SELECT count(*) FROM spans") == [(0,)]


def test_spans_of_completions_without_a_start(pg_url: str) -> None:  # noqa: F811
    """PostgreSQL's spans view, as SQLite's: a completion with no task.started before it
    (an inline function run) is a span that ends there and starts duration_ms before."""
    import asyncio

    from tests.test_spans_view import done, failed, go, own

    async def write() -> None:
        w = await open_store(pg_url).open_writer()
        await w.append([started("r1")])
        await w.append(
            [
                own("r1", "t-inline", 1, 20.0, 500.0),
                go("r1", "t-retry", 1, 10.0),
                failed("r1", "t-retry", 1, 11.0),
                own("r1", "t-retry", 2, 12.0, 250.0),
                go("r1", "t-paired", 1, 16.0),
                done("r1", "t-paired", 1, 17.0),
            ]
        )
        await w.close()

    asyncio.run(write())
    with open_store(pg_url).reader() as r:
        rows = r.query(
            "SELECT task_id, attempt, status, start_ts, end_ts, duration_ms, name FROM spans "
            "ORDER BY task_id, attempt"
        )
    assert [tuple(row) for row in rows] == [
        ("t-inline", 1, "ok", 19.5, 20.0, 500.0, "f.execute"),
        ("t-paired", 1, "ok", 16.0, 17.0, 1000.0, "a.execute"),
        ("t-retry", 1, "error", 10.0, 11.0, 1000.0, "a.execute"),
        ("t-retry", 2, "ok", 11.75, 12.0, 250.0, "f.execute"),
    ]
