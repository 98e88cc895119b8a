"""Names that look like Rich markup are printed as they are, by the real CLI, and a
terminal that cannot redraw gets the progress as plain lines.

The live progress's plain lines (stdout a pipe, as under ``| tee`` or in CI) went
through Rich markup: an agent named ``w[/]k`` raised in the progress ticker, which
then printed no line for the rest of the run, and a ``[bold]`` in a name vanished.
``flock-es runs`` listed a program file ``m[red].py`` as ``m.py``. The TUI already
showed both as they are (its cells are text, not markup). On ``TERM=dumb`` rich's
Live drew nothing, so a run there showed no progress at all.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.conftest import run_cli, run_cli_stderr_on_a_terminal

PROGRAM = """
import asyncio

from pydantic import BaseModel
from flock_es import Flock, flock_type

@flock_type
class Page(BaseModel):
    text: str

flock = Flock()

async def read(p: Page) -> None:
    await asyncio.sleep(1.3)  # past the first plain progress line, at 1 s

flock.agent("w[/]k").consumes(Page).with_function(read)
flock.agent("p[bold]x[/bold]").consumes(Page).with_function(read)

async def main():
    await flock.publish(Page(text="[/quote] [bold]b[/bold]"))
    await flock.run_until_idle()
"""


def test_progress_lines_and_the_runs_table_print_names_as_they_are(tmp_path: Path) -> None:
    program = tmp_path / "m[red].py"
    program.write_text(textwrap.dedent(PROGRAM))
    db = tmp_path / "run.db"
    out = run_cli(["run", program, "--db", db], cwd=tmp_path)  # stdout a pipe: plain lines
    assert out.returncode == 0, out.stderr
    progress = [line for line in out.stderr.splitlines() if "running" in line]
    assert progress, out.stderr
    assert "2 running (p[bold]x[/bold], w[/]k)" in progress[0], progress
    assert "Traceback" not in out.stderr
    runs = run_cli(["runs", "--db", db])
    assert runs.returncode == 0, runs.stderr
    assert "m[red].py" in runs.stdout, runs.stdout


def test_a_terminal_that_cannot_redraw_gets_plain_progress_lines(tmp_path: Path) -> None:
    """``TERM=dumb`` (Emacs's shell, some CI consoles): rich's Live drew nothing there,
    so a run on such a terminal showed no progress at all."""
    program = tmp_path / "pages.py"
    program.write_text(textwrap.dedent(PROGRAM))
    with (tmp_path / "out.txt").open("w") as stdout:  # a file: the panel's case
        out, screen = run_cli_stderr_on_a_terminal(
            ["run", program, "--db", tmp_path / "run.db"], env={"TERM": "dumb"}, stdout=stdout
        )
    assert out.returncode == 0, screen
    assert "2 running (p[bold]x[/bold], w[/]k)" in screen, repr(screen)
    assert "\x1b[" not in screen, repr(screen)  # no redraws, no styles
