"""``flock-es tui``: the live monitor.

Everything a user can get wrong (the database, the run, the seq, the terminal)
is checked here, before Textual starts, so each mistake is one line and a
non-zero exit rather than a crash inside the UI. The ``flock_es.tui`` package (and so
Textual) is imported only inside the command, which keeps ``flock-es --help``
fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flock_es.cli.completion import complete_run
from flock_es.cli.options import DbOption, db_path
from flock_es.errors import UserError


def resolve(db: Path | str, run: str | None, at: int | None) -> tuple[str | None, int | None]:
    """Check the database, the run and the seq; returns (run id or None, seq or None).

    A database that does not exist yet is fine (the monitor waits for the first
    run), unless a run or a seq was asked for, or its folder does not exist.
    """
    from flock_es.log.backends import open_reader
    from flock_es.log.ports import EventReader
    from flock_es.log.reader import LogReader
    from flock_es.log.schema import check_database

    if isinstance(db, Path) and not check_database(db, must_exist=False):
        if run is not None or at is not None:
            check_database(db, must_exist=True)  # raises: no database at PATH
        if not db.parent.is_dir():
            raise UserError(f"no folder {db.parent} for the database {db}")
        return None, None
    log: EventReader = LogReader(db, verify=True) if isinstance(db, Path) else open_reader(db)
    with log:
        run_id = log.resolve_run(run) if run is not None else None
        if at is None:
            return run_id, None
        target = run_id if run_id is not None else log.resolve_run("latest")
        first, last = log.first_seq(target), log.last_seq(target)
        if not first <= at <= last:
            raise UserError(f"--at {at} is outside run {target} (its seqs are {first}..{last})")
        return target, at


def register(app: typer.Typer) -> None:
    @app.command()
    def tui(
        db: DbOption = None,
        run: Annotated[
            str | None,
            typer.Option(
                "--run",
                "-r",
                help="Run id or unique prefix. Default: the latest run, switching to new ones.",
                show_default=False,
                autocompletion=complete_run,
            ),
        ] = None,
        at: Annotated[
            int | None,
            typer.Option(
                "--at",
                help="Open at this seq (time travel); the same fold as `flock-es show --at`.",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Watch a run live: agents, in-flight tasks, artifacts, batches, events, timeline.

        Opens the database read-only, so it works while `flock-es run` writes from
        another process and after the run has ended. Press ? for keys, ctrl+p for
        the command palette, q to quit.
        """
        path = db_path(db)  # a SQLite file, or a PostgreSQL URL: the monitor reads either
        run_id, seq = resolve(path, run, at)
        from flock_es.tui.terminal import check_terminal

        check_terminal()
        from flock_es.tui import MonitorApp  # Textual is imported only when the monitor starts

        MonitorApp(path, run_id, at=seq).run()
