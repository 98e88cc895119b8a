"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="SQLite database file. Default: $FLOCK_ES_DB, else data/flock-es.db.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def db_path(db: Path | None) -> Path:
    from flock_es.log.schema import default_db_path

    return db if db is not None else default_db_path()
