"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flock_es.cli.completion import complete_run

if TYPE_CHECKING:
    from flock_es.log.backends import DbRef
    from flock_es.log.ports import Durability

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help=(
            "SQLite database file, or postgresql://user@host:port/dbname. "
            "Default: $FLOCK_ES_DB, else data/flock-es.db."
        ),
        show_default=False,
    ),
]
RunArg = Annotated[
    str,
    typer.Argument(help="Run id, unique prefix, or 'latest'.", autocompletion=complete_run),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
DurabilityOption = Annotated[
    str | None,
    typer.Option(
        "--durability",
        help="full (default): every commit carrying a paid model or tool answer is "
        "fsynced before anything acts on it, so it survives power loss. normal: "
        "commits survive a crash of the process, and power loss only once "
        "checkpointed (faster). Default: $FLOCK_ES_DURABILITY, else full.",
        show_default=False,
    ),
]
ReconnectOption = Annotated[
    float,
    typer.Option(
        "--reconnect-for",
        help="On PostgreSQL: seconds a run that lost its database (once main() had "
        "published its seeds) keeps connecting again to go on, before it stops; 0: stop "
        "at once.",
    ),
]


def reconnect_seconds(value: float) -> float:
    """``--reconnect-for``, checked."""
    from flock_es.errors import UserError

    if value < 0:
        raise UserError("--reconnect-for must not be negative")
    return value


def durability(value: str | None) -> Durability:
    """The ``--durability`` choice (or $FLOCK_ES_DURABILITY), checked."""
    from flock_es.log.ports import Durability

    return Durability.choose(value)


def db_path(db: str | Path | None) -> DbRef:
    """The database ``--db`` names (a path or a PostgreSQL URL), else the default."""
    from flock_es.log.backends import parse_db
    from flock_es.log.schema import default_db_path

    return parse_db(db) if db is not None else default_db_path()


def output_path(value: str, writes: str, sqlite: bool = False, hint: str = "") -> Path:
    """A file to write, as given; ``scheme://`` is an error, never a file name, as in
    ``--db``: ``Path`` made ``postgresql://h/x`` the local file ``./postgresql:/h/x``.
    ``writes`` says what the command writes instead, ``hint`` what to do; ``sqlite``:
    ``sqlite:///PATH`` is taken, as ``--db`` takes it.

    Example: ``output_path("out.jsonl", "export writes a file")`` is ``Path("out.jsonl")``.
    """
    from flock_es.errors import OutputError
    from flock_es.log.pg_url import safe_url
    from flock_es.log.ports import sqlite_path, url_scheme

    scheme = url_scheme(value)
    if scheme is None:
        return Path(value)
    if sqlite and scheme == "sqlite":
        return sqlite_path(value)
    raise OutputError(f"{writes}, not to a URL: {safe_url(value)}" + (f"; {hint}" if hint else ""))


# Options whose value may be left out, and what they then mean. The click that
# typer vendors has no optional option values, so main() fills them in.
OPTIONAL_VALUES = {"--otlp": "default"}


def optional_values(argv: list[str]) -> list[str]:
    """``argv`` with the implied value after a bare ``--otlp`` (last, or before
    another option)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--":
            return out + argv[i + 1 :]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in OPTIONAL_VALUES and (nxt is None or nxt.startswith("-")):
            out.append(OPTIONAL_VALUES[arg])
    return out
