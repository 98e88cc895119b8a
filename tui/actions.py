"""Run actions (resume, replay, fork, export) as CLI subprocesses.

The TUI never imports the runtime (nor litellm): an action is ``python -m
flock_es.cli.app ...`` in a child process, its output shown when it ends.

Example::

    argv = command("fork", "data/flock-es.db", "r-2026...", at=42)
    result = run(argv)        # Result(code=0, output="forked r-... at seq 42 ...")
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ACTIONS", "Result", "command", "run"]

ACTIONS = {
    "resume": "Resume run {run}: re-run its unfinished tasks (recorded model calls are not paid again)?",
    "retry": "Resume run {run} and re-run its failed tasks (resume --retry-failed)?",
    "replay": "Replay run {run} offline and compare it with the record?",
    "fork": "Fork run {run} at seq {at} into a new run that continues live?",
    "export": "Export run {run} as JSON Lines to {out}?",
}


@dataclass(slots=True, frozen=True)
class Result:
    """How an action ended: its exit code and the last lines it printed."""

    action: str
    code: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.code == 0


def command(
    action: str, db: str, run_id: str, *, at: int | None = None, out: Path | None = None
) -> list[str]:
    """The argv of ``action`` on ``run_id`` in ``db``."""
    base = [sys.executable, "-m", "flock_es.cli.app"]
    if action == "resume":
        return [*base, "resume", run_id, "--db", db, "-q"]
    if action == "retry":
        return [*base, "resume", run_id, "--db", db, "-q", "--retry-failed"]
    if action == "replay":
        return [*base, "replay", run_id, "--db", db, "--no-timeline"]
    if action == "fork":
        return [*base, "fork", run_id, "--at", str(at), "--db", db, "-q"]
    if action == "export":
        return [*base, "export", run_id, "--db", db, "-o", str(out)]
    raise ValueError(f"unknown action {action!r}")


def run(action: str, argv: list[str], timeout: float = 3600.0) -> Result:
    """Run ``argv``; the output is kept short (its last 40 lines)."""
    t = time.monotonic()
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        code, text = proc.returncode, (proc.stdout + proc.stderr)
    except (OSError, subprocess.TimeoutExpired) as exc:
        code, text = -1, f"{action} did not finish: {exc}"
    lines = text.strip().splitlines()[-40:]
    return Result(action, code, "\n".join(lines), time.monotonic() - t)
