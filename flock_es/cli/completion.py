"""Shell completion of run ids, for every command that takes a RUN.

The shell calls ``flock-es`` with ``_FLOCK_ES_COMPLETE=complete_bash`` (or zsh,
fish, powershell) on every Tab; typer then asks :func:`complete_run` for the
candidates. It reads only the ``runs`` read model through a read-only reader
of the log (SQLite or PostgreSQL; no fold, no model client, never litellm), and
a missing or damaged database completes to nothing instead of printing an
error into the user's command line.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["complete_run"]


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
