"""``flock-es run PROGRAM.py``: load a program, run it until idle, summarise."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flock_es.cli.options import (
    DbOption,
    DurabilityOption,
    ReconnectOption,
    durability,
    reconnect_seconds,
)
from flock_es.errors import ExitCode, RunLostDatabase, UserError

if TYPE_CHECKING:  # every command's --help, `show` and `runs` load this module, and none of these
    from flock_es.cli.run_driver import Ended
    from flock_es.runtime.flock import Flock
    from flock_es.runtime.program import Program


def configure(
    program: Program,
    db: str | None,
    model: str | None,
    max_calls: int | None,
    sync: str | None = None,
) -> Flock:
    from flock_es.log.backends import parse_db

    flock = program.flock
    flock.durability = durability(sync)
    flock.program = program.path.resolve()
    if db is not None:
        flock.db_path = parse_db(db)
    if model is not None:
        flock.model = model
    if max_calls is not None:
        if max_calls < 1:
            raise UserError("--max-concurrent-calls must be at least 1")
        flock.max_concurrent_calls = max_calls
    return flock


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        program: Annotated[
            Path,
            typer.Argument(
                help="Python file defining `flock = Flock(...)` and `async def main()`.",
                show_default=False,
            ),
        ],
        db: DbOption = None,
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                "-m",
                help="Model for every agent without its own: 'offline' (default), "
                "'offline?latency=2', or a litellm string such as 'openai/gpt-4.1'. "
                "Overrides the program and $FLOCK_ES_MODEL.",
                show_default=False,
            ),
        ] = None,
        max_concurrent_calls: Annotated[
            int | None,
            typer.Option(
                "--max-concurrent-calls",
                help="Cap on model calls in flight across all agents.",
                show_default=False,
            ),
        ] = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No live progress; summary only.")
        ] = False,
        sync: DurabilityOption = None,
        no_execute: Annotated[
            bool,
            typer.Option(
                "--no-execute",
                help="Publish and wait; `flock-es worker` processes do the work.",
            ),
        ] = False,
        shared: Annotated[
            bool,
            typer.Option(
                "--share",
                help="Open the run to `flock-es worker` processes and work alongside them "
                "(always so on PostgreSQL).",
            ),
        ] = False,
        concurrency: Annotated[
            int,
            typer.Option(
                "--concurrency", help="On a shared run: tasks this process executes at once."
            ),
        ] = 16,
        reconnect_for: ReconnectOption = 300.0,
    ) -> None:
        """Run PROGRAM until nothing is pending, recording every step in the event log.

        The program's `main()` publishes the seed artifacts; the run then goes on
        until every triggered agent has finished. Ctrl-C stops cleanly and leaves
        the run resumable with `flock-es resume RUN`. On PostgreSQL, a run that
        loses its database once main() has published its seeds connects again and
        resumes itself, for up to --reconnect-for seconds.
        """
        from flock_es.cli.resume_run import Claim, ResumeOptions
        from flock_es.cli.run_driver import finish, run_to_end, share
        from flock_es.cli.run_outage import go_on
        from flock_es.log.backends import is_postgres
        from flock_es.runtime.program import call_main, load_program

        reconnect_seconds(reconnect_for)
        prog = load_program(program)
        flock = configure(prog, db, model, max_concurrent_calls, sync)
        share(flock, no_execute, concurrency, shared)
        # Fails fast before main() runs, and starts litellm's import meanwhile if this
        # process makes the calls (not with --no-execute: its workers do).
        flock.check_models()
        t0 = time.time()
        claim = Claim()
        cut_short: list[RunLostDatabase] = []  # main() had not returned when it was lost

        def first() -> Ended:
            try:
                with claim.owning(flock.db_path, flock.run_id) as owner:
                    return flock, run_to_end(flock, lambda: call_main(prog), quiet, program, owner)
            except RunLostDatabase as exc:
                if exc.in_main:
                    cut_short.append(exc)
                raise

        ended: Ended
        if no_execute or not is_postgres(flock.db_path):  # its workers ride outages out
            ended = first()
        else:
            options = ResumeOptions(
                model=model,
                quiet=quiet,
                sync=sync,
                concurrency=concurrency,
                max_calls=max_concurrent_calls,
            )
            ended = go_on(flock.db_path, flock.run_id, claim, options, first, reconnect_for)
        if ended is not None:  # None: another process finished it meanwhile (said)
            finish(*ended, t0)
        if cut_short:
            main_cut_short(program, flock.run_id)


def main_cut_short(program: Path, run_id: str) -> None:
    """A run completed by resuming it after its ``main()`` was cut short, waiting in
    ``run_until_idle()``: what ``main()`` does after that (print its results) did not
    run, so the process does not pass for one whose program ran to its end."""
    typer.echo(
        f"flock-es: {program}: main() did not run to its end: it was waiting when run "
        f"{run_id} lost its database, and the run was resumed and completed without it; "
        f"what main() does after run_until_idle() did not run (`flock-es show {run_id}` "
        "shows the run's artifacts)",
        err=True,
    )
    raise typer.Exit(ExitCode.RUN_FAILED)
