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
from typing import Annotated, Any

import typer

from flock_es.cli.options import DbOption, JsonOption, db_path

RunArg = Annotated[str, typer.Argument(help="Run id, unique prefix, or 'latest'.")]
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


def _warn(msg: str) -> None:
    typer.echo(f"flock-es: warning: {msg}", err=True)


def _program_for(recorded: str | None, given: Path | None, run_id: str) -> Path:
    from flock_es.errors import ProgramError

    if given is not None:
        return given
    if not recorded:
        raise ProgramError(f"run {run_id} recorded no program file; pass --program PROGRAM.py")
    path = Path(recorded)
    if not path.is_file():
        raise ProgramError(
            f"the program of run {run_id} ({recorded}) no longer exists; pass --program PROGRAM.py"
        )
    return path


def _hash_warning(path: Path, recorded: str | None) -> dict[str, str | None]:
    from flock_es.runtime.resume import program_hash

    now = program_hash(path)
    if recorded and now and recorded != now:
        _warn(f"{path} changed since the run was recorded (recorded {recorded}, now {now})")
    return {"recorded": recorded, "current": now}


def _finish(flock: Any, status: Any, t0: float) -> None:
    from flock_es.cli.run_cmd import finish

    finish(flock, status, t0)


def _drive(flock: Any, body: Any, quiet: bool, program: Path) -> Any:
    from flock_es.cli.run_cmd import run_to_end

    return run_to_end(flock, body, quiet, program)


def register(app: typer.Typer) -> None:
    @app.command()
    def resume(
        run: RunArg = "latest",
        db: DbOption = None,
        program: ProgramOption = None,
        model: ModelOption = None,
        quiet: QuietOption = False,
        force: Annotated[
            bool,
            typer.Option(
                "--force", help="Resume even if the recorded process id is alive (a reused pid)."
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
    ) -> None:
        """Continue RUN after a crash or Ctrl-C: re-run unfinished tasks, re-arm timers.

        Model calls already recorded are served from the log, never paid twice;
        finished tasks are not re-run. After a provider outage, --retry-failed
        re-runs the tasks it made fail.
        """
        from flock_es.cli.loader import load_program
        from flock_es.errors import UserError
        from flock_es.log.reader import LogReader
        from flock_es.runtime.resume import (
            live_status,
            load_run,
            nothing_to_resume,
            prepare,
            start_resumed,
        )

        path_db = db_path(db)
        with LogReader(path_db) as reader:
            run_id = reader.resolve_run(run)
            state = load_run(reader, run_id)
        if nothing_to_resume(state, retry_failed):
            retryable = len(state.retryable_tasks())
            status = state.finished_status or "interrupted"
            if retryable:
                typer.echo(
                    f"Run {run_id} is {status}; {retryable} task(s) failed on a provider error "
                    f"that may pass: `flock-es resume {run_id} --retry-failed` re-runs them."
                )
                return
            typer.echo(f"Run {run_id} is {status}; nothing to resume.")
            return
        alive = live_status(None, state.pid, state.host) == "running"
        if state.finished_status is None and alive and not force:
            raise UserError(
                f"run {run_id} is still running (pid {state.pid} on {state.host}); stop it "
                "first, or pass --force if that process is not flock-es"
            )
        path = _program_for(state.program, program, run_id)
        _hash_warning(path, state.program_hash)
        prog = load_program(path)
        prepare(prog.flock, state, path_db, model, path)
        t0 = time.time()
        status = _drive(
            prog.flock, lambda: start_resumed(prog.flock, retry_failed=retry_failed), quiet, path
        )
        _finish(prog.flock, status, t0)

    @app.command()
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
        from flock_es.cli.loader import load_program
        from flock_es.log.reader import LogReader
        from flock_es.runtime.replay import Replayer

        with LogReader(db_path(db)) as reader:
            run_id = reader.resolve_run(run)
            events = reader.events(run_id)
        started = events[0].body if events else {}
        path = _program_for(started.get("program"), program, run_id)
        digests = _hash_warning(path, started.get("program_hash"))
        prog = load_program(path)
        replayer = Replayer(events, prog.flock.agents)
        prog.flock.continue_from(replayer.state)  # the program's store sees the replay
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
                    typer.echo(f"{mark}{s.seq:>7}  +{s.offset:8.3f}s  {s.agent[:24]:<24} {s.text}")
            summary = (
                f"{report.events} events · {report.tasks_replayed} tasks re-executed · "
                f"{report.decisions_checked} decisions checked · {report.served_calls} model "
                f"answers served from the record · {report.model_calls} model calls made"
            )
            typer.echo(summary)
            if report.pending_at_end:
                typer.echo(f"{report.pending_at_end} tasks were unfinished in the record")
            typer.echo("identical" if report.identical else str(report.divergence))
        if not report.identical:
            raise typer.Exit(1)

    @app.command()
    def fork(
        run: RunArg,
        at: Annotated[int, typer.Option("--at", help="Fork right after this event (seq).")],
        db: DbOption = None,
        program: ProgramOption = None,
        model: ModelOption = None,
        quiet: QuietOption = False,
    ) -> None:
        """Start a new run from the state of RUN at seq --at and continue it live.

        Use another --model or a changed program. The new run records its parent
        and the fork point.
        """
        from flock_es.cli.loader import load_program
        from flock_es.log.reader import LogReader
        from flock_es.projection.fold import fold
        from flock_es.runtime.resume import (
            check_at,
            fork_events,
            prepare,
            start_resumed,
            unit_end,
            write_fork,
        )

        path_db = db_path(db)
        with LogReader(path_db) as reader:
            parent_id = reader.resolve_run(run)
            check_at(reader, parent_id, at)
            parent = reader.events(parent_id)
        cut = unit_end(parent, at)
        if cut != at:
            _warn(f"seq {at} is inside a transaction; forking after seq {cut}, where it ends")
        parent_state = fold(e for e in parent if e.seq is not None and e.seq <= cut)
        path = _program_for(parent_state.program, program, parent_id)
        prog = load_program(path)
        flock = prog.flock
        flock.program = path.resolve()
        flock.db_path = path_db
        chosen = model or parent_state.model or flock.model
        flock.model = chosen
        flock.check_models()
        events = fork_events(parent, parent_state, cut, flock, chosen)
        asyncio.run(write_fork(path_db, events))
        with LogReader(path_db) as reader:
            state = fold(reader.iter_events(flock.run_id))
        typer.echo(f"Forked {parent_id} at seq {cut} into {flock.run_id}", err=True)
        prepare(flock, state, path_db, chosen, path)
        t0 = time.time()
        status = _drive(flock, lambda: start_resumed(flock, record=False), quiet, path)
        _finish(flock, status, t0)

    @app.command("export")
    def export_(
        run: RunArg = "latest",
        db: DbOption = None,
        output: Annotated[
            Path | None,
            typer.Option(
                "--output", "-o", help="File to write (default: stdout).", show_default=False
            ),
        ] = None,
    ) -> None:
        """Write RUN's events as JSON Lines (secrets are never in the log or the export)."""
        from flock_es.log.export import export_run
        from flock_es.log.reader import LogReader

        with LogReader(db_path(db)) as reader:
            run_id = reader.resolve_run(run)
            if output is None:
                n = export_run(reader, run_id, sys.stdout)
            else:
                tmp = output.with_name(output.name + ".part")
                with tmp.open("w", encoding="utf-8") as f:
                    n = export_run(reader, run_id, f)
                tmp.replace(output)
        if output is not None:
            typer.echo(f"exported {n} events of {run_id} to {output}", err=True)

    @app.command("import")
    def import_(
        file: Annotated[Path, typer.Argument(help="A file written by `flock-es export`.")],
        db: DbOption = None,
    ) -> None:
        """Load an exported run into a database (replay and show then work on it)."""
        from flock_es.log.export import import_run

        run_id, n = import_run(file, db_path(db))
        typer.echo(f"imported run {run_id} ({n} events) into {db_path(db)}")
