"""The ``flock-es`` entry point.

Each command lives in its own module and registers itself here. User mistakes
(``UserError``) become one line on stderr and a non-zero exit; anything else is
a bug and keeps its traceback. Nothing here imports litellm or textual.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from flock_es.cli.options import optional_values
from flock_es.errors import ExitCode, UserError

app = typer.Typer(
    name="flock-es",
    help=(
        "Durable multi-agent LLM runs on a blackboard: every step is recorded in a SQLite "
        "event log, so runs resume after a crash, replay offline and can be watched live."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    # Eager, so it runs while the options are parsed, before click insists on a command.
    if value:
        from flock_es import __version__

        typer.echo(f"flock-es {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the flock-es version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """Durable multi-agent LLM runs on a blackboard."""


def _register() -> None:
    from flock_es.cli import (
        completion,
        inspect_cmd,
        replay_cmd,
        run_cmd,
        salvage_cmd,
        scale_cmd,
        tui_cmd,
    )

    for module in (run_cmd, inspect_cmd, replay_cmd, salvage_cmd, tui_cmd, scale_cmd, completion):
        module.register(app)


_register()


def fail(message: str, code: int = ExitCode.USER_ERROR) -> None:
    """Print a one-line error (without any secret this process holds) and exit."""
    from flock_es.domain.printable import printable
    from flock_es.redaction import redact_text

    # ``printable``: the message may quote a program's exception, which may quote data.
    typer.echo(f"flock-es: error: {printable(redact_text(message))}", err=True)
    raise SystemExit(code)


def _exit(code: object) -> None:
    """Leave at once when litellm was loaded: tearing its heap down takes seconds.

    Everything that matters is done by now (the run closed, its log committed,
    the output printed); only the interpreter's module teardown is skipped.
    """
    if "litellm" not in sys.modules:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr, flush=True)
        code = ExitCode.RUN_FAILED
    os._exit(code)


def _quiet_library_warnings() -> None:
    """No warnings of the PostgreSQL driver on stderr: its pool logs one for each
    connection it drops (the server ended them: a failover, an administrator) ahead of
    the one line that says what stopped and where, and the CLI configures no logging
    that would route them elsewhere. A program that sets up logging still gets them
    (they reach the root logger's handlers as before)."""
    logging.getLogger("psycopg").addHandler(logging.NullHandler())


def main() -> None:
    """Console script: ``flock-es``."""
    from flock_es.cli.closed_stdout import StdoutClosed, guard_stdout

    _quiet_library_warnings()

    try:
        with guard_stdout():
            app(prog_name="flock-es", args=optional_values(sys.argv[1:]))
    except StdoutClosed:
        # `| head` took what it wanted; like other Unix tools, stop without a word.
        raise SystemExit(ExitCode.RUN_FAILED) from None
    except UserError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("flock-es: interrupted", err=True)
        raise SystemExit(ExitCode.INTERRUPTED) from None
    except SystemExit as exc:
        _exit(exc.code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
