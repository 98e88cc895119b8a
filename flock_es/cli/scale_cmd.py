"""``migrate`` (create or upgrade a database's schema) and ``worker`` (scale-out)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from flock_es.cli.options import DbOption, db_path
from flock_es.cli.worker_loop import serve_worker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from flock_es.runtime.worker import Worker

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def migrate(db: DbOption = None) -> None:
        """Create or upgrade the database's schema, in one transaction.

        Optional: the first run does it too. Useful to prepare a PostgreSQL
        database before starting workers on several machines; a database the
        server does not have yet is created (as a SQLite file would be).
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

    @app.command()
    def worker(
        program: Annotated[
            Path, typer.Argument(help="The program whose runs to serve.", show_default=False)
        ],
        db: DbOption = None,
        concurrency: Annotated[
            int, typer.Option("--concurrency", help="Tasks this worker executes at once.")
        ] = 16,
        lease: Annotated[
            float,
            typer.Option(
                "--lease", help="Seconds a dead worker's tasks stay claimed before takeover."
            ),
        ] = 10.0,
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                "-m",
                help="Model instead of the one each run recorded.",
                show_default=False,
            ),
        ] = None,
        reconnect_for: Annotated[
            float,
            typer.Option(
                "--reconnect-for",
                help="Seconds a worker that lost its database keeps trying to connect "
                "again before it stops; 0: stop at once.",
            ),
        ] = 300.0,
    ) -> None:
        """Execute the tasks of every open shared run of PROGRAM in the log.

        On PostgreSQL, start one or more on any machine that reaches the database;
        on a SQLite file, several on the machine that holds it. Each claims
        scheduled tasks under a lease and commits their results. Runs started with
        `flock-es run PROGRAM --db URL` (PostgreSQL), or with --share or
        --no-execute (SQLite), are served.
        Stop with Ctrl-C or SIGTERM. A killed worker's tasks are taken over at once
        by the workers of its machine, by others when its leases expire. A worker
        whose database goes away (a failover, a full disk) connects again and joins
        the open runs anew, for up to --reconnect-for seconds.
        """
        from flock_es.errors import UserError
        from flock_es.log.backends import describe_db
        from flock_es.runtime.program import load_program

        target = db_path(db)
        if concurrency < 1 or lease <= 0 or reconnect_for < 0:
            raise UserError(
                "--concurrency must be at least 1, --lease positive "
                "and --reconnect-for not negative"
            )
        prog = load_program(program)
        prog.flock.program = prog.path.resolve()
        from flock_es.runtime.worker import Worker

        where = describe_db(target)

        def make() -> Worker:
            w = Worker(prog.flock, str(target), concurrency=concurrency, lease=lease, model=model)
            w.on_join = lambda j: typer.echo(
                f"worker {w.id} joined run {j.run_id}: {j.open_tasks:,} tasks open "
                f"({j.folded:,} events folded in {j.seconds:.1f} s)"
            )
            return w

        serving = f"serving {program} on {where}"
        served = asyncio.run(serve_worker(make, where, reconnect_for, serving))
        typer.echo(f"worker {served.last} stopped after {served.executed} tasks")
