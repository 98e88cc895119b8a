"""The event log: the only package that speaks SQL.

``open_store`` picks a backend (``EventStore``) from a path or URL.
"""

from flock_es.log.ports import (
    Durability,
    EventReader,
    EventStore,
    EventWriter,
    Lease,
    RunRow,
    open_store,
)
from flock_es.log.reader import LogReader
from flock_es.log.schema import DB_SCHEMA_VERSION, check_database, default_db_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from flock_es.log.writer import LogWriter


def __getattr__(name: str) -> object:
    # The writer loads aiosqlite; readers (the TUI, `runs`, `show`) never need it.
    if name == "LogWriter":
        from flock_es.log.writer import LogWriter

        return LogWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DB_SCHEMA_VERSION",
    "Durability",
    "EventReader",
    "EventStore",
    "EventWriter",
    "Lease",
    "LogReader",
    "LogWriter",
    "RunRow",
    "check_database",
    "default_db_path",
    "open_store",
]
