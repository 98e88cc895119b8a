"""``salvage``: copy what still reads of a damaged SQLite database into a new one.

Every command that meets a damaged file names it and points here. The damaged
file is only read; each run goes to the new database up to its first lost
event, where ``resume`` goes on (``flock_es.log.salvage``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flock_es.cli.options import DbOption, db_path, output_path
from flock_es.errors import DatabaseError

if TYPE_CHECKING:  # imported when the command runs: the CLI starts without it
    from flock_es.log.salvage import SalvagedRun

__all__ = ["register"]


def salvage(
    output: Annotated[str, typer.Argument(help="The new SQLite file to write (must not exist).")],
    db: DbOption = None,
) -> None:
    """Copy every run that still reads from a damaged database (--db) into OUTPUT.

    A run whose events all read is copied whole. A run with a lost event is
    copied up to it, less the commit that ends there (a commit is all or
    nothing), and `flock-es resume RUN --db OUTPUT` goes on from that point.
    The paid answers and tool results that still read past the cut are kept
    aside for that resume, which serves each to the same call: only answers
    that were lost are paid again, and only tools whose results were lost run
    again. A run whose start is lost cannot be copied. On a terminal, a line
    on stderr says how far it has come.
    """
    from flock_es.cli.phase_line import phase_line
    from flock_es.log.salvage import salvage as salvage_log

    new_db = output_path(
        output,
        "salvage writes a new SQLite file",
        sqlite=True,
        hint="`flock-es export` and `flock-es import --db URL` move its runs to PostgreSQL",
    )
    source = db_path(db)
    if not isinstance(source, Path):
        raise DatabaseError("salvage reads a SQLite file; a PostgreSQL server has its own recovery")
    with phase_line() as line:
        progress = None
        if line is not None:
            progress = lambda phase, done, total: line(  # noqa: E731
                phase, done, total, "pages" if phase == "reading" else "events"
            )
        report = salvage_log(source, new_db, progress)
    kept = sum(r.kept for r in report.runs)
    lost = f"{report.lost:,} rows lost" if report.lost else "no row lost"
    typer.echo(
        f"salvaged {len(report.runs)} run(s) of {source} into {new_db}: {kept:,} events, {lost}"
    )
    for run in report.runs:
        resume = f"flock-es resume {run.run_id} --db {new_db}"
        if run.cut_at is None and run.finished:
            typer.echo(f"  {run.run_id}  whole: {run.kept:,} events")
        elif run.cut_at is None:
            typer.echo(f"  {run.run_id}  whole, not finished: {run.kept:,} events; {resume}")
        else:
            typer.echo(
                f"  {run.run_id}  cut at seq {run.cut_at:,}: {run.kept:,} of the "
                f"{run.read:,} events that read{_aside(run)}; {resume}"
            )
    for run_id in report.dropped:
        typer.echo(f"  {run_id}  not copied: its run.started is lost")


def _aside(run: SalvagedRun) -> str:
    """What the salvage kept of ``run`` past its cut, for the resume ("" if nothing)."""
    parts = [f"{run.answers:,} paid answers"] if run.answers else []
    if run.tools:
        parts.append(f"{run.tools:,} tool results")
    return f"; {' and '.join(parts)} after it kept for the resume" if parts else ""


def register(app: typer.Typer) -> None:
    """Add salvage to ``app``."""
    app.command()(salvage)
