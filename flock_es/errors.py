"""One error hierarchy.

``UserError`` and its subclasses are mistakes a user can fix (a bad path, an
unknown run id, a program that does not validate). The CLI prints them as one
line and exits non-zero. Anything else that escapes is a bug in flock-es and
keeps its traceback.
"""

from __future__ import annotations


class FlockError(Exception):
    """Base class of every error flock-es raises on purpose."""


class UserError(FlockError):
    """A mistake the user can fix; shown as a one-line message, never a traceback."""

    exit_code: int = 2


class ProgramError(UserError):
    """The user's program cannot be loaded or does not define what the CLI needs."""


class ConfigError(UserError):
    """Bad configuration: unknown model provider, missing API key, bad option."""


class MissingCredentialsError(ConfigError):
    """A model needs an API key that is neither in the environment nor in its settings."""


class DefinitionError(UserError):
    """An agent or subscription is declared wrongly (e.g. ``.consumes()`` with no types)."""


class ArtifactValidationError(UserError):
    """A published object is not a registered pydantic model or fails validation."""


class DatabaseError(UserError):
    """The database file is missing, foreign, corrupt or from a newer schema."""


class RunNotFoundError(UserError):
    """No run with that id (or id prefix) exists in the database."""


class ExportFormatError(UserError):
    """An export file is truncated or malformed."""


class ModelError(FlockError):
    """A model call failed (the task fails; the run goes on)."""


class ReplayMiss(ModelError):
    """No recorded answer for a model or tool call while only records may be served."""


class OutputValidationError(ModelError):
    """A model or function answered with output that does not validate."""

    def __init__(self, message: str, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw


class DatabaseDamagedError(DatabaseError):
    """The database fails an integrity check or holds an event that does not parse."""


class DiskFullError(DatabaseError):
    """The disk holding the database is full; the run stops and stays resumable."""


class RunOwnedError(UserError):
    """Another live process owns the run (its lease has not expired)."""
