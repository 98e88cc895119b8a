"""Shell completion: the ``completion SHELL`` command and run-id candidates.

``flock-es completion bash`` prints the script for the shell it is told, so it
works wherever it runs (a Dockerfile, CI, a login script); typer's
``--show-completion``/``--install-completion`` guess the shell from the parent
process instead, which fails when there is no shell above flock-es.

The shell calls ``flock-es`` with ``_FLOCK_ES_COMPLETE=complete_bash`` (or zsh,
fish, powershell) on every Tab; typer then asks :func:`complete_run` for the
candidates. It reads only the ``runs`` read model through a read-only reader
of the log (SQLite or PostgreSQL; no fold, no model client, never litellm), and
a missing or damaged database completes to nothing instead of printing an
error into the user's command line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated

import typer

from flock_es.errors import UserError

__all__ = ["SHELLS", "complete_run", "completion_script", "install_script", "register"]

# The shells typer has a completion script for ("pwsh" is PowerShell 7's name).
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
PROG_NAME = "flock-es"
# The variable the script sets when it calls flock-es back for candidates.
COMPLETE_VAR = "_FLOCK_ES_COMPLETE"


def completion_script(shell: str) -> str:
    """The completion script for ``shell``, which calls back into ``flock-es``.

    Example::

        >>> "complete -o default -F _flock_es_completion flock-es" in completion_script("bash")
        True
    """
    # typer's public completion module re-exports these without marking them
    # exported (its own --show-completion uses them), hence the ignore.
    from typer.completion import get_completion_script  # type: ignore[attr-defined]

    return get_completion_script(
        prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=_known(shell)
    )


def _known(shell: str) -> str:
    if shell not in SHELLS:
        raise UserError(f"unknown shell {shell!r}: choose one of {', '.join(SHELLS)}")
    return shell


# Where typer's installer writes each shell's script, under the home folder: made
# here first, so a file in its place stops the install before it edits ~/.bashrc or
# ~/.zshrc to load a script it then cannot write.
_FOLDERS = {"bash": ".bash_completions", "zsh": ".zfunc", "fish": ".config/fish/completions"}


def install_script(shell: str) -> Path:
    """Install ``shell``'s script where it loads it (typer's installer); where it went.

    What typer raises (a file where a folder must be, no ``powershell`` program to ask
    for the profile's path, a folder it cannot write) becomes one line naming it.
    """
    from typer.completion import install  # type: ignore[attr-defined]

    try:
        if shell in _FOLDERS:
            (Path.home() / _FOLDERS[shell]).mkdir(parents=True, exist_ok=True)
        _, path = install(shell=shell, prog_name=PROG_NAME, complete_var=COMPLETE_VAR)
    except subprocess.CalledProcessError as exc:
        raise UserError(
            f"cannot install the {shell} completion: `{shell}` failed (exit {exc.returncode}) "
            f"when asked for its profile's path; `flock-es completion {shell}` prints the script"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot install the {shell} completion: {_why(shell, exc)}") from None
    return Path(path)


def _why(shell: str, exc: OSError) -> str:
    """What stopped the install: a missing shell program, a file in a folder's place."""
    name = exc.filename if isinstance(exc.filename, str) else None
    if isinstance(exc, FileNotFoundError) and name == shell:  # subprocess.run([shell, ...])
        return (
            f"no `{shell}` program on the PATH to ask for its profile's path; "
            f"`flock-es completion {shell}` prints the script to add to the profile"
        )
    if name is not None and isinstance(exc, FileExistsError | NotADirectoryError):
        # mkdir names the folder it was making, not the file in the way (an ancestor).
        target = Path(name)
        blocking = next((p for p in (*reversed(target.parents), target) if p.is_file()), target)
        return f"{blocking} is a file, where a folder must be"
    where = f"{name}: " if name else ""
    return f"{where}{exc.strerror or exc}"


def register(app: typer.Typer) -> None:
    @app.command()
    def completion(
        shell: Annotated[
            str,
            typer.Argument(
                help="bash, zsh, fish, powershell or pwsh.",
                metavar="SHELL",
                autocompletion=lambda incomplete: [s for s in SHELLS if s.startswith(incomplete)],
                show_default=False,
            ),
        ],
        install: Annotated[
            bool,
            typer.Option(
                "--install", help="Write the script where SHELL loads it, instead of printing it."
            ),
        ] = False,
    ) -> None:
        """Print (or --install) the shell completion script for SHELL.

        Completes commands, options and run ids. Unlike --show-completion, it
        does not guess the shell from the parent process, so it also works in
        scripts and containers. Example: eval "$(flock-es completion zsh)"
        """
        if not install:
            typer.echo(completion_script(shell))
            return
        path = install_script(_known(shell))
        typer.echo(f"{shell} completion installed in {path}")
        typer.echo("It takes effect in new shells.")


def complete_run(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Run ids (newest first) that start with ``incomplete``, each with a short help.

    Honours ``--db`` when it was typed before the run, else ``$FLOCK_ES_DB`` or
    ``data/flock-es.db``. Example (bash)::

        $ flock-es show r-2026<TAB>
        r-20261128-0850-3f2a  r-20261128-0912-9c41
    """
    from flock_es.cli.options import db_path
    from flock_es.log.backends import open_reader

    try:
        with open_reader(db_path(ctx.params.get("db"))) as reader:
            runs = reader.runs()
    except Exception:
        return []
    out = [
        (r.run_id, _describe(r.status, r.program, r.parent_run))
        for r in reversed(runs)
        if r.run_id.startswith(incomplete)
    ]
    if "latest".startswith(incomplete) and runs:
        out.append(("latest", f"the newest run ({runs[-1].run_id})"))
    return out


def _describe(status: str | None, program: str | None, parent: str | None) -> str:
    parts = [status or "running", Path(program).name if program else "no program"]
    if parent:
        parts.append(f"fork of {parent}")
    return " · ".join(parts)
