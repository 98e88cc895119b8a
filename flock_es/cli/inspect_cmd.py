"""``flock-es runs`` and ``flock-es show``: read-only views of the log.

Both open the database read-only, so they work while a run is writing to it.
``show`` builds its picture with the same fold as the runtime.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from flock_es.cli.options import DbOption, JsonOption, RunArg, db_path
from flock_es.cli.show_render import fmt_cost as _fmt_cost
from flock_es.cli.show_render import fmt_time as _fmt_time
from flock_es.cli.show_render import print_show, show_data
from flock_es.errors import UserError

AtOption = Annotated[
    int | None,
    typer.Option("--at", help="Show the state right after this event (seq).", show_default=False),
]


def run_rows(db: Any) -> list[dict[str, Any]]:
    """One dict per run, as ``runs --json`` prints it."""
    from flock_es.log.backends import open_reader
    from flock_es.log.liveness import live_status

    with open_reader(db) as reader:
        rows = reader.runs()
        stats = reader.run_stats()
    out = []
    now = time.time()
    for r in rows:
        st = stats.get(r.run_id, {})
        scheduled, done, failed = (_int(st.get(k)) or 0 for k in ("scheduled", "done", "failed"))
        status = live_status(
            r.status,
            _int(st.get("pid")),
            _str(st.get("host")),
            pending=scheduled > done + failed,
            failed=failed > 0,
        )
        end = r.finished_at
        if end is None:
            end = now if status == "running" else _float(st.get("last_ts"))
        out.append(
            {
                "run_id": r.run_id,
                "program": r.program,
                "model": r.model,
                "started_at": r.started_at,
                "duration_s": round(end - r.started_at, 3) if end and r.started_at else None,
                "status": status,
                "tasks": {
                    "done": done,
                    "failed": failed,
                    "pending": max(0, scheduled - done - failed),
                },
                "artifacts": _int(st.get("artifacts")) or 0,
                "model_calls": _int(st.get("calls")) or 0,
                # Attempts that gave no usable answer (each is a model.attempt event),
                # and calls that were answered only after such a retry.
                "failed_attempts": _int(st.get("failed_attempts")) or 0,
                "retried_calls": _int(st.get("retried")) or 0,
                "tokens": (_int(st.get("tokens_in")) or 0) + (_int(st.get("tokens_out")) or 0),
                "cost": None if _int(st.get("cost_unknown")) else _float(st.get("cost")) or 0.0,
                "parent_run": r.parent_run,
                "fork_seq": r.fork_seq,
                "events": r.events,
                "first_seq": r.first_seq,
                "last_seq": r.last_seq,
            }
        )
    return out


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) else None


def _float(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


RUNS_SHOWN = 50
"""The runs ``flock-es runs`` lists by default (the latest): a log in use for months
holds thousands, and its table of 3,000 took 2.5 s to print, most of it formatting."""

LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit",
        "-n",
        help=f"List the latest N runs (0: all). Default: {RUNS_SHOWN}, and all with --json.",
        show_default=False,
    ),
]


def latest(rows: list[dict[str, Any]], limit: int | None, as_json: bool) -> list[dict[str, Any]]:
    """The latest ``limit`` of ``rows`` (oldest first, as listed); see ``LimitOption``."""
    if limit is not None and limit < 0:
        raise UserError(f"--limit must be 0 (all runs) or more, not {limit}")
    n = limit if limit is not None else (0 if as_json else RUNS_SHOWN)
    return rows[-n:] if n else rows


def register(app: typer.Typer) -> None:
    @app.command()
    def runs(db: DbOption = None, as_json: JsonOption = False, limit: LimitOption = None) -> None:
        """List the runs in the database, latest last: status, tasks, artifacts, models, forks."""
        every = run_rows(db_path(db))
        rows = latest(every, limit, as_json)
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo(f"no runs in {db_path(db)}")
            return
        from rich.console import Console
        from rich.table import Table

        from flock_es.domain.printable import printable

        table = Table(box=None, pad_edge=False)
        for col in (
            "run",
            "program",
            "started",
            "dur",
            "status",
            "tasks d/f/p",
            "artifacts",
            "calls",
            "failed att.",
            "tokens",
            "cost",
            "fork of",
        ):
            table.add_column(col)
        for r in rows:
            t = r["tasks"]
            dur = f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "-"
            fork = f"{r['parent_run']}@{r['fork_seq']}" if r["parent_run"] else ""
            prog = printable((r["program"] or "-").rsplit("/", 1)[-1])
            table.add_row(
                r["run_id"],
                prog,
                _fmt_time(r["started_at"]),
                dur,
                r["status"],
                f"{t['done']}/{t['failed']}/{t['pending']}",
                str(r["artifacts"]),
                str(r["model_calls"]),
                str(r["failed_attempts"]),
                str(r["tokens"]),
                _fmt_cost(r["cost"]),
                fork,
            )
        # Not markup: a program file named ``m[red].py`` was listed as ``m.py``.
        Console(width=200, highlight=False, markup=False).print(table)
        if len(every) > len(rows):  # on stderr: the table stays the whole of stdout
            older = len(every) - len(rows)
            typer.echo(f"({older:,} older runs not listed: --limit 0 lists them all)", err=True)

    @app.command()
    def show(
        run: RunArg = "latest",
        db: DbOption = None,
        at: AtOption = None,
        payloads: Annotated[
            bool,
            typer.Option(
                "--payloads",
                help="Print every artifact's payload (with --json too).",
            ),
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Show the blackboard of RUN at its end, or right after event --at SEQ.

        The text view prints counts and what is pending or went wrong. Every view
        folds the run compactly, in memory bounded by the pending work, not by the
        run's size: --json and --payloads, which list every artifact (--json every
        task too), keep those in a temporary file in $TMPDIR as they fold (about the
        size of what they print) and write them out one at a time. On a terminal,
        a line on stderr says how many of the run's events they have read so far,
        then (--json to a file or a pipe) how many entries are written.
        """
        import sys

        from flock_es.cli.phase_line import phase_line
        from flock_es.cli.show_calls import text_view
        from flock_es.cli.show_listing import print_payloads, write_json
        from flock_es.log.backends import open_reader
        from flock_es.runtime.resume import check_at

        with open_reader(db_path(db)) as reader, phase_line() as line:
            run_id = reader.resolve_run(run)
            at = check_at(reader, run_id, at)
            if as_json:
                write_json(reader, run_id, at, sys.stdout, payloads, line)
            elif payloads:
                print_payloads(reader, run_id, at, line)
            else:
                state, calls = text_view(reader, run_id, at)
                before_end = at is not None and at < reader.last_seq(run_id)
                data = show_data(state, False, before_end, calls)
                if (
                    data["status"] != "running"
                    and state.finished_status is None
                    and reader.last_seq(run_id) > state.last_seq
                ):
                    # Its process was checked after the fold, and wrote on since: it was
                    # alive at the fold and ended since (not "interrupted", as it read).
                    data["status"] = "running"
                print_show(data, False)
