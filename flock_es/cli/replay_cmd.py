"""``resume``, ``replay``, ``fork``, ``export`` and ``import``: what the log makes possible.

resume continues a crashed or interrupted run where it stopped; replay
re-executes a run offline with the current code and reports the first
divergence; fork branches a new live run off any event of an old one; export
and import move a run between databases as JSON Lines.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flock_es.cli.options import (
    DbOption,
    DurabilityOption,
    JsonOption,
    ReconnectOption,
    RunArg,
    db_path,
    durability,
    output_path,
    reconnect_seconds,
)
from flock_es.cli.resume_run import Claim, ResumeOptions, hash_warning, resume_run, warn
from flock_es.domain.events import RunStarted, RunStatus, body_as
from flock_es.domain.printable import printable
from flock_es.errors import ExitCode, UserError

if TYPE_CHECKING:  # for annotations: the CLI starts without the log's modules
    from flock_es.log.ports import EventReader

ProgramOption = Annotated[
    Path | None,
    typer.Option(
        "--program",
        "-p",
        help="The program to use instead of the one the run recorded.",
        show_default=False,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model for agents without their own.", show_default=False),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")]


def _run_started(reader: EventReader, run_id: str) -> RunStarted | None:
    """The body of ``run_id``'s ``run.started`` (its first event), or None."""
    first = next(iter(reader.iter_events(run_id, limit=1)), None)
    return body_as(first, RunStarted) if first is not None else None


def resume(
    run: RunArg = "latest",
    db: DbOption = None,
    program: ProgramOption = None,
    model: ModelOption = None,
    quiet: QuietOption = False,
    sync: DurabilityOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Take the run over even though its owner's lease has not expired "
            "(only when that process is dead, e.g. on another machine).",
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Also re-run tasks that failed on a provider error that may pass "
            "(rate limit, 5xx, timeout, connection).",
        ),
    ] = False,
    max_concurrent_calls: Annotated[
        int | None,
        typer.Option(
            "--max-concurrent-calls",
            help="Cap on model calls in flight across all agents (default: the run's own, "
            "as `run --max-concurrent-calls` or the program set it).",
            show_default=False,
        ),
    ] = None,
    reconnect_for: ReconnectOption = 300.0,
) -> None:
    """Continue RUN after a crash or Ctrl-C: re-run unfinished tasks, re-arm timers.

    Model calls already recorded are served from the log, never paid twice;
    finished tasks are not re-run. After a provider outage, --retry-failed
    re-runs the tasks it made fail. A recorded call whose request the program
    no longer makes stops resume before any work (exit 2): fork instead. On
    PostgreSQL, a resume that loses its database connects again and goes on, for
    up to --reconnect-for seconds.
    """
    from flock_es.cli.run_driver import Ended, finish
    from flock_es.cli.run_outage import go_on
    from flock_es.log.backends import is_postgres, open_reader

    reconnect_seconds(reconnect_for)
    if max_concurrent_calls is not None and max_concurrent_calls < 1:
        raise UserError("--max-concurrent-calls must be at least 1")
    path_db = db_path(db)
    with open_reader(path_db) as reader:
        run_id = reader.resolve_run(run)
        if max_concurrent_calls is None:  # the run's own cap, as it started
            started = _run_started(reader, run_id)
            max_concurrent_calls = started.get("max_concurrent_calls") if started else None
    options = ResumeOptions(program, model, quiet, sync, force, retry_failed)
    options.max_calls = max_concurrent_calls
    claim = Claim()
    t0 = time.time()

    def first() -> Ended:
        done = resume_run(path_db, run_id, claim, options)
        return None if done is None else (done.flock, done.status)

    ended = (
        go_on(path_db, run_id, claim, options, first, reconnect_for)
        if is_postgres(path_db)
        else first()
    )
    if ended is not None:  # None: nothing to resume (said)
        finish(*ended, t0)


def replay(
    run: RunArg = "latest",
    db: DbOption = None,
    program: ProgramOption = None,
    as_json: JsonOption = False,
    timeline: Annotated[
        bool, typer.Option("--timeline/--no-timeline", help="Print the timeline.")
    ] = True,
) -> None:
    """Re-execute RUN offline with the current code and compare it with the record.

    Model answers come from the log only: no network, no API key, zero model
    calls. Prints the timeline, then "identical" or the first divergence.
    Exit code: 0 identical, 1 diverged, 2 error.
    """
    from flock_es.log.backends import open_reader
    from flock_es.runtime.board_queries import BoardSource
    from flock_es.runtime.lifecycle import program_of
    from flock_es.runtime.program import load_program
    from flock_es.runtime.replay import Replayer
    from flock_es.runtime.resume import program_hash

    with open_reader(db_path(db)) as reader:
        run_id = reader.resolve_run(run)
        started = _run_started(reader, run_id)
        path = program_of(started.get("program") if started else None, program, run_id)
        recorded_hash = started.get("program_hash") if started else None
        digests = hash_warning(path, recorded_hash, program_hash(path))
        prog = load_program(path)
        # ctx.store's queries read the recorded run (read-only), up to each task's inputs;
        # so do reads of the artifacts the replay's compact state let go of.
        board = BoardSource(db_path(db), run_id)
        # The record streams from the log as the replay walks it (never all in memory).
        replayer = Replayer(
            reader.iter_events(run_id),
            prog.flock.agents,
            hooks=prog.flock.orchestrator_hooks(),
            timeline=timeline,
            board=board,
            where=reader.path,
        )
        prog.flock.continue_from(replayer.state, board=board)  # its store sees the replay
        report = asyncio.run(replayer.run())
    if as_json:
        data = report.to_json()
        data["program"] = str(path)
        data["program_hash"] = digests
        if not timeline:
            data.pop("timeline")
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        if timeline:
            for s in report.timeline:
                mark = " " if s.ok else "✗"
                text = printable(s.text)  # an event's summary may quote an error, an answer
                agent = printable(s.agent)[:24]  # a name may hold control characters too
                typer.echo(f"{mark}{s.seq:>7}  +{s.offset:8.3f}s  {agent:<24} {text}")
        summary = (
            f"{report.events} events · {report.tasks_replayed} tasks re-executed · "
            f"{report.decisions_checked} decisions checked · {report.served_calls} model "
            f"answers served from the record · {report.model_calls} model calls made"
        )
        typer.echo(summary)
        if report.pending_at_end:
            typer.echo(f"{report.pending_at_end} tasks were unfinished in the record")
        typer.echo("identical" if report.identical else printable(str(report.divergence)))
    if not report.identical:
        raise typer.Exit(ExitCode.RUN_FAILED)


def fork(
    run: RunArg,
    at: Annotated[int, typer.Option("--at", help="Fork right after this event (seq).")],
    db: DbOption = None,
    program: ProgramOption = None,
    model: ModelOption = None,
    quiet: QuietOption = False,
    sync: DurabilityOption = None,
) -> None:
    """Start a new run from the state of RUN at seq --at and continue it live.

    Use another --model or a changed program. The new run records its parent
    and the fork point. A fork of a shared run (every run on PostgreSQL) is
    shared too: `flock-es worker` processes take part.
    """
    from flock_es.cli.run_driver import finish, run_to_end, share
    from flock_es.log.backends import is_postgres, open_reader
    from flock_es.runtime.lifecycle import Ownership, plan_fork, start_fork
    from flock_es.runtime.program import load_program
    from flock_es.runtime.sharing import is_shared_run

    path_db = db_path(db)
    with open_reader(path_db) as reader:
        parent_id = reader.resolve_run(run)
    plan = plan_fork(path_db, parent_id, at, program)
    if plan.cut != at:
        warn(f"seq {at} is inside a transaction; forking after seq {plan.cut}, where it ends")
    prog = load_program(plan.program)
    flock = prog.flock
    flock.durability = durability(sync)
    if is_postgres(path_db) or is_shared_run(path_db, parent_id):
        # Open to workers like its parent (every run is, on PostgreSQL); they arm its
        # inherited timers from the fork point recorded in its run.started.
        share(flock, no_execute=False, concurrency=16, shared=True)
    with Ownership(path_db, flock.run_id) as owner:
        t0 = time.time()
        typer.echo(f"Forked {parent_id} at seq {plan.cut} into {flock.run_id}", err=True)
        forked = lambda: start_fork(flock, plan, model)  # noqa: E731
        status = run_to_end(flock, forked, quiet, plan.program, owner, seeds=False)
    finish(flock, status, t0)


OTLP_DEFAULT = "default"  # what a bare --otlp means (cli.options.OPTIONAL_VALUES)


def _export_otlp(db: str | None, run: str, endpoint: str) -> None:
    from flock_es.log.backends import open_reader
    from flock_es.log.otel import build_spans, otlp_endpoint, send_spans

    url = otlp_endpoint(None if endpoint == OTLP_DEFAULT else endpoint)
    with open_reader(db_path(db)) as reader:
        run_id = reader.resolve_run(run)
        spans = build_spans(reader.iter_events(run_id))
    send_spans(run_id, spans, url)
    typer.echo(f"sent {len(spans)} spans of {run_id} to {url}", err=True)


def export_(
    run: RunArg = "latest",
    db: DbOption = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="File to write (default, or '-': stdout).", show_default=False
        ),
    ] = None,
    otlp: Annotated[
        str | None,
        typer.Option(
            "--otlp",
            metavar="[ENDPOINT]",
            help="Send the run as OpenTelemetry spans over OTLP/HTTP instead "
            "(default endpoint: $OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318). "
            "Needs pip install 'flock-es\\[otel]'.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write RUN's events as JSON Lines (secrets are never in the log or the export).

    On a terminal, a line on stderr says how far the export has come. With
    --otlp, send the run, its tasks, model calls and tool calls as
    OpenTelemetry spans to a collector instead.
    """
    from flock_es.cli.phase_line import phase_line
    from flock_es.log.backends import open_reader
    from flock_es.log.export import export_run, export_to_file

    if otlp is not None:
        _export_otlp(db, run, otlp)
        return
    output = None
    if to is not None and to != "-":  # "-": the usual spelling of stdout, not a file named "-"
        output = output_path(to, "export writes JSON Lines to a file or '-' (stdout)")
    with phase_line(streams_to_stdout=output is None) as line, open_reader(db_path(db)) as reader:
        run_id = reader.resolve_run(run)
        if output is None:
            n = export_run(reader, run_id, sys.stdout, line)
        else:
            n = export_to_file(reader, run_id, output, line)
        row = reader.run_row(run_id)
    if output is not None:
        typer.echo(f"exported {n} events of {run_id} to {output}", err=True)
    if row is None or row.status != RunStatus.COMPLETED:  # a completed one needs nothing kept
        _note_salvaged(db_path(db), run_id)


def _note_salvaged(db: Path | str, run_id: str) -> None:
    """Say on stderr what a salvage kept aside for ``run_id`` that an export leaves out."""
    from flock_es.log.salvaged_answers import salvaged_answers

    kept = salvaged_answers(db, run_id)
    if kept is None:
        return
    n = len(kept)
    kept.close()
    typer.echo(
        f"flock-es: note: the export leaves out the {n:,} answers and tool results that "
        f"salvage kept past the cut of {run_id}; resume it here first "
        f"(flock-es resume {run_id} --db {db}) so that none is paid for or run again",
        err=True,
    )


def import_(
    file: Annotated[Path, typer.Argument(help="A file written by `flock-es export`.")],
    db: DbOption = None,
) -> None:
    """Load an exported run into a database (replay and show then work on it).

    The file is checked whole before anything is written, then imported in one
    transaction and read back; on a terminal, a line on stderr says how far each
    of the three has come.
    """
    from flock_es.cli.phase_line import phase_line
    from flock_es.log.export import import_run

    with phase_line() as line:
        run_id, n = import_run(file, db_path(db), line)
    typer.echo(f"imported run {run_id} ({n} events) into {db_path(db)}")


def register(app: typer.Typer) -> None:
    """Add resume, replay, fork, export and import to ``app``."""
    app.command()(resume)
    app.command()(replay)
    app.command()(fork)
    app.command("export")(export_)
    app.command("import")(import_)
