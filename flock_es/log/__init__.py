"""The event log: the only package that speaks SQL."""

from flock_es.log.reader import LogReader, RunRow
from flock_es.log.schema import DB_SCHEMA_VERSION, check_database, default_db_path
from flock_es.log.writer import LogWriter

__all__ = [
    "DB_SCHEMA_VERSION",
    "LogReader",
    "LogWriter",
    "RunRow",
    "check_database",
    "default_db_path",
]
