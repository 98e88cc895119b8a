"""A fresh PostgreSQL database per test, on the server named by $FLOCK_ES_TEST_PG.

Tests that take the ``pg_url`` fixture are skipped when the variable is unset;
``.ci/run`` sets it (and fails first if the server is not reachable), so CI
always runs them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = ["PG_ENV", "pg_admin_url", "pg_database", "pg_url"]

PG_ENV = "FLOCK_ES_TEST_PG"


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextmanager
def pg_database(admin_url: str, prefix: str = "flock_es_t") -> Iterator[str]:
    """Create a uniquely named database; yield its URL; drop it afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_admin_url() -> str:
    """$FLOCK_ES_TEST_PG; skips the test when unset (fails it on CI)."""
    admin = os.environ.get(PG_ENV)
    if not admin:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: set {PG_ENV}")
        pytest.skip(f"set {PG_ENV}=postgresql://... to run the PostgreSQL tests")
    return admin


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty database of its own for this test."""
    with pg_database(pg_admin_url()) as url:
        yield url
