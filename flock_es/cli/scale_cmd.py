"""``migrate``: create or upgrade a database's schema (SQLite or PostgreSQL)."""

from __future__ import annotations

import typer

from flock_es.cli.options import DbOption, db_path

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def migrate(db: DbOption = None) -> None:
        """Create or upgrade the database's schema, in one transaction.

        Optional: the first run does it too. Useful to prepare a PostgreSQL
        database before pointing several machines at it.
        """
        from flock_es.log.backends import describe_db, migrate_db

        target = db_path(db)
        before, after = migrate_db(target)
        where = describe_db(target)
        if before is None:
            typer.echo(f"created the flock-es schema (version {after}) in {where}")
        elif before == after:
            typer.echo(f"{where} is up to date (schema version {after})")
        else:
            typer.echo(f"upgraded {where} from schema {before} to {after}")
