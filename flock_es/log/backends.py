"""What the CLI and the runtime call with a ``--db`` value: thin helpers over
``open_store`` (which picks the backend).

A plain path (or ``sqlite:///PATH``) is a SQLite file; ``postgresql://`` (or
``postgres://``) is a PostgreSQL database. Any other ``scheme://`` is refused
with one line, never taken as a file path.

Example::

    db = parse_db("postgresql://postgres@127.0.0.1:5432/test")
    with open_reader(db) as log:
        print(log.runs())
"""

from __future__ import annotations

from pathlib import Path

from flock_es.log.ports import (
    Durability,
    EventReader,
    EventWriter,
    open_store,
    sqlite_path,
    store_kind,
)

__all__ = [
    "DbRef",
    "describe_db",
    "is_postgres",
    "migrate_db",
    "open_reader",
    "open_writer",
    "parse_db",
]

DbRef = Path | str
"""A SQLite file path, or a PostgreSQL URL (a ``str``)."""


def parse_db(value: str | Path) -> DbRef:
    """A ``Path`` for SQLite, the URL string for PostgreSQL; DatabaseError otherwise."""
    if store_kind(value) == "postgresql":
        return str(value)
    return sqlite_path(value)


def is_postgres(db: DbRef) -> bool:
    return isinstance(db, str) and store_kind(db) == "postgresql"


def describe_db(db: DbRef) -> str:
    """The database for messages (a PostgreSQL URL without its password)."""
    return open_store(db).location


def open_reader(db: DbRef) -> EventReader:
    """A read-only view of the log at ``db``."""
    return open_store(db, readonly=True).reader()


async def open_writer(db: DbRef, durability: Durability = Durability.FULL) -> EventWriter:
    """The group-commit writer for ``db`` (creating or upgrading its schema)."""
    return await open_store(db).open_writer(durability)


def migrate_db(db: DbRef) -> tuple[int | None, int]:
    """Create or upgrade the schema at ``db`` in one transaction: (before, after)."""
    if is_postgres(db):
        from flock_es.log.postgres_store import PostgresStore

        return PostgresStore(str(db)).migrate()
    import sqlite3

    from flock_es.log.schema import DB_SCHEMA_VERSION, check_database, read_uri
    from flock_es.log.sqlite_file import ensure_schema

    path = Path(db)
    before = None
    if check_database(path, must_exist=False):
        con = sqlite3.connect(read_uri(path), uri=True)
        try:
            before = int(con.execute("PRAGMA user_version").fetchone()[0])
        finally:
            con.close()
    ensure_schema(path)
    return before, DB_SCHEMA_VERSION
