"""One error hierarchy, and the one table of exit codes.

``UserError`` and its subclasses are mistakes a user can fix (a bad path, an
unknown run id, a program that does not validate). The CLI prints them as one
line and exits with their ``exit_code``. Anything else that escapes is a bug in
flock-es and keeps its traceback.

Example::

    try:
        ...
    except UserError as exc:
        print(f"flock-es: error: {exc}")
        raise SystemExit(exc.exit_code)
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

__all__ = [
    "AgentFailed",
    "ArtifactValidationError",
    "AtOutOfRange",
    "CommitFailed",
    "ConfigError",
    "DatabaseError",
    "DefinitionError",
    "ExitCode",
    "ExportFormatError",
    "FlockError",
    "MalformedResponseError",
    "McpServerError",
    "ModelCallError",
    "ModelError",
    "OutputValidationError",
    "PayloadInvalid",
    "PayloadNotJson",
    "PermanentModelError",
    "ProgramChanged",
    "ProgramError",
    "RecordedCallChanged",
    "ReplayMiss",
    "RunLostDatabase",
    "RunNotFoundError",
    "TaskEndedElsewhere",
    "TransientModelError",
    "UserError",
    "database_may_come_back",
]


class ExitCode(IntEnum):
    """Every exit status the CLI uses, in one place.

    Example::

        raise typer.Exit(ExitCode.RUN_FAILED)
    """

    OK = 0
    # A task of the run failed, or a replay diverged from the record.
    RUN_FAILED = 1
    # A mistake the user can fix (bad argument, program, run id, database, changed program).
    USER_ERROR = 2
    # Stopped by Ctrl-C or SIGTERM; the run is resumable.
    INTERRUPTED = 130


class FlockError(Exception):
    """Base class of every error flock-es raises on purpose."""


class UserError(FlockError):
    """A mistake the user can fix; shown as a one-line message, never a traceback."""

    exit_code: int = ExitCode.USER_ERROR


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


class PayloadNotJson(ArtifactValidationError, ValueError):
    """A payload holds a value JSON cannot (NaN, infinity, a lone surrogate), or its
    dump fails: refused where it is published, so the log writer never meets it. A
    ``ValueError`` too, as the serialiser's own error it replaces is."""


class PayloadInvalid(ArtifactValidationError, ValueError):
    """A payload its own type does not validate (a field assigned after the object was
    made: pydantic checks assignments only with ``validate_assignment=True``):
    refused where it is published, as a resume or replay could not rebuild it."""


class UnstorableEvent(UserError):
    """An event holds text JSON cannot (a lone surrogate) where the program put it
    (a description, a setting): its commit fails, and the run stops until it is fixed."""


class DatabaseError(UserError):
    """The database file is missing, foreign, corrupt or from a newer schema."""


class RunLostDatabase(DatabaseError):
    """A run stopped on a database that may come back (a lost connection, a server gone).

    The message says how to go on; ``reason`` is the database's error alone;
    ``seeding`` whether ``main()`` was still publishing its seeds (those it had yet
    to publish are lost: a resume finishes only the work already published); and
    ``in_main`` whether ``main()`` had not returned (publishing, or waiting in
    ``run_until_idle()``): what it does after that wait does not run on a resume.

    Example::

        RunLostDatabase("cannot write to DB ...; run r-1 stopped: ...", "r-1", "cannot ...", False)
    """

    def __init__(
        self, message: str, run_id: str, reason: str, seeding: bool, in_main: bool = False
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.reason = reason
        self.seeding = seeding
        self.in_main = in_main or seeding


class RunNotFoundError(UserError):
    """No run with that id (or id prefix) exists in the database."""


class AtOutOfRange(UserError):
    """``--at SEQ`` is outside the run."""


class ExportFormatError(UserError):
    """An export file is truncated or malformed."""


class RecordedCallChanged(UserError):
    """A recorded model call would be served to a request the program no longer makes.

    ``task_id``/``agent``/``call_index`` name the call; ``part`` what differs
    (``messages``, ``output_schema``, ``tools``); ``expected``/``actual`` the two versions.
    """

    def __init__(
        self,
        task_id: str,
        agent: str,
        call_index: int,
        part: str,
        expected: Any = None,
        actual: Any = None,
        detail: str = "",
    ) -> None:
        what = f"the {detail or part} of its recorded model call {call_index} changed"
        super().__init__(f"agent {agent!r}, task {task_id}: {what}")
        self.task_id, self.agent, self.call_index = task_id, agent, call_index
        self.part, self.expected, self.actual, self.detail = part, expected, actual, detail


class ProgramChanged(UserError):
    """Resume refused: the program no longer makes a request whose answer is recorded."""


class CommitFailed(FlockError):
    """The log refused a commit; the run stops and its state is the log's again."""


class AgentFailed(FlockError):
    """``Flock.invoke``: the invoked agent's task failed."""


class TelemetryError(UserError):
    """An OpenTelemetry export cannot be done: the extra is missing, the endpoint
    is malformed, or the receiver did not accept the spans."""


class McpServerError(UserError):
    """An MCP server an agent needs cannot be started or reached, or it stopped.

    An environmental fault: the run stops (resumable), the CLI prints one line
    naming the server.
    """


class TaskEndedElsewhere(FlockError):
    """A shared run's task another worker ended (its lease was taken over while this
    one stalled): its work here stops before another model call is paid for."""


class ModelError(FlockError):
    """A model call failed (the task fails; the run goes on)."""


class ModelCallError(ModelError):
    """A model call that failed; ``outcome`` names the kind, ``status`` the HTTP status."""

    outcome = "error"
    # The raw response, when the provider answered with something unusable.
    raw: str | None = None

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientModelError(ModelCallError):
    """May succeed if tried again: 429, 5xx, connection errors, timeouts.

    ``headers``: the response's rate-limit headers, for the model's limiter.
    """

    transient = True

    def __init__(
        self,
        message: str,
        outcome: str,
        status: int | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, status, retry_after)
        self.outcome = outcome
        self.headers = headers


class MalformedResponseError(TransientModelError):
    """HTTP 200 with a body that has no answer in it (``"choices": []``): tried again."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message, "malformed")
        self.raw = raw


class PermanentModelError(ModelCallError):
    """Will fail again: authentication, permission, bad request, unknown model."""

    def __init__(self, message: str, outcome: str, status: int | None = None) -> None:
        super().__init__(message, status)
        self.outcome = outcome


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
    """The disk holding the database is full; the run stops and stays resumable.

    Example::

        raise DiskFullError("run.db", "database or disk is full")
    """

    def __init__(self, path: object, detail: str, *, while_seeding: bool = False) -> None:
        self.path = path
        self.detail = detail
        if while_seeding:
            # resume does not call main() again: say what it can and cannot finish.
            then = (
                "the run stopped while main() was still publishing its seeds: "
                "`flock-es resume` once there is space finishes the work already "
                "published, but not the seeds main() had yet to publish"
            )
        else:
            then = "the run stopped and can be resumed with `flock-es resume` once there is space"
        super().__init__(f"the disk holding {path} is full ({detail}); {then}")

    def while_seeding(self) -> DiskFullError:
        """The same error, for a run whose ``main()`` had not finished publishing."""
        return DiskFullError(self.path, self.detail, while_seeding=True)


class RunOwnedError(UserError):
    """Another live process owns the run (its lease has not expired)."""


class OutputError(UserError):
    """A file the user asked for cannot be written (no directory, a directory, read-only)."""


def database_may_come_back(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error that may pass (a lost connection, a server
    gone, a full disk): not a damaged file. A worker connects again on such an error; a
    shared run that stops on one stays open for its workers.

    Example::

        database_may_come_back(DiskFullError("x.db", "database or disk is full"))  # True
    """
    return isinstance(exc, DatabaseError) and not isinstance(exc, DatabaseDamagedError)
