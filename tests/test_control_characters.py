"""Control characters in a run's text reach no terminal: they are printed as escapes.

An error message, a model's answer or a scraped page can hold ``ESC ] 0 ; … BEL``
(retitles the terminal), ``ESC [ 2 J`` (clears it) or a carriage return (writes
over the line naming the failed task). ``flock-es run`` printed such an error as it
was, and Rich and Textual drop only BEL, BS, VT, FF and CR, not ESC. The CLI's
summary, ``show``, ``replay`` and the TUI's lists and details now show each as its
escape (``\\x1b``); the log and ``--json`` keep the text as it was.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from flock_es.domain.printable import printable
from flock_es.tui import MonitorApp
from flock_es.tui.screens import DetailScreen
from tests.conftest import run_cli
from tests.test_tui_app import cells, keys_of, settle
from tests.test_tui_large_payloads import _rendered

HOSTILE = "\x1b]0;PWNED\x07\x1b[2J\rOVER\x9b31m"
CONTROLS = ("\x1b", "\x07", "\r", "\x9b")

PROGRAM = """
from pydantic import BaseModel
from flock_es import Flock, flock_type

@flock_type
class Page(BaseModel):
    text: str

@flock_type
class Clean(BaseModel):
    text: str

flock = Flock()

def clean(p: Page) -> Clean:
    return Clean(text=p.text)

def parse(p: Page) -> None:
    raise ValueError("cannot parse: " + p.text)

flock.agent("clean").consumes(Page).publishes(Clean).with_function(clean)
flock.agent("parse").consumes(Page).with_function(parse)

async def main():
    await flock.publish(Page(text=HOSTILE))
    await flock.run_until_idle()
"""


def hostile_free(text: str) -> bool:
    return not any(c in text for c in CONTROLS)


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real run through the CLI: a page holding control characters, copied by one
    agent and quoted in the error of another; the run's summary (stderr)."""
    d = tmp_path_factory.mktemp("hostile")
    program = d / "pages.py"
    program.write_text(textwrap.dedent(PROGRAM).replace("HOSTILE", repr(HOSTILE)))
    out = run_cli(["run", program, "--db", d / "run.db"], cwd=d)
    assert out.returncode == 1, out.stderr
    return d / "run.db", out.stderr


def test_the_summary_show_and_replay_print_escapes(hostile_db: tuple[Path, str]) -> None:
    db, summary = hostile_db
    assert hostile_free(summary), repr(summary)
    assert "cannot parse: \\x1b]0;PWNED\\x07\\x1b[2J\\rOVER\\x9b31m" in summary
    show = run_cli(["show", "latest", "--db", db, "--payloads"])
    assert show.returncode == 0 and hostile_free(show.stdout), repr(show.stdout)
    assert "cannot parse: \\x1b]0;PWNED" in show.stdout
    timeline = run_cli(["replay", "latest", "--db", db])
    assert timeline.returncode == 0 and hostile_free(timeline.stdout), repr(timeline.stdout)
    # The log keeps the text as it was: --json has it, escaped as JSON escapes it.
    data = json.loads(run_cli(["show", "latest", "--db", db, "--json", "--payloads"]).stdout)
    [failed] = data["task_list"]["failed"]
    assert failed["error"] == "cannot parse: " + HOSTILE


NAMED = """
from pydantic import BaseModel
from flock_es import Flock, flock_type

@flock_type
class Page(BaseModel):
    text: str

flock = Flock()

def parse(p: Page) -> None:
    raise ValueError("boom")

flock.agent("evil" + HOSTILE).consumes(Page).with_function(parse)

async def main():
    await flock.publish(Page(text="hi"))
    await flock.run_until_idle()
"""


@pytest.fixture(scope="module")
def hostile_names(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A run through the CLI of a program whose file name and agent's name hold control
    characters, the agent failing: the database, the program, the run's summary."""
    d = tmp_path_factory.mktemp("names")
    program = d / f"esc{HOSTILE}.py"
    program.write_text(textwrap.dedent(NAMED).replace("HOSTILE", repr(HOSTILE)))
    out = run_cli(["run", program, "--db", d / "run.db"], cwd=d)
    assert out.returncode == 1, out.stderr
    return d / "run.db", program, out.stderr


def test_agent_names_and_program_paths_print_as_escapes(
    hostile_names: tuple[Path, Path, str],
) -> None:
    db, _, summary = hostile_names
    assert hostile_free(summary) and "failed     evil\\x1b]0;PWNED" in summary, repr(summary)
    show = run_cli(["show", "latest", "--db", db])
    assert show.returncode == 0 and hostile_free(show.stdout), repr(show.stdout)
    assert "failed    evil\\x1b]0;PWNED" in show.stdout
    assert "  program  " in show.stdout and "esc\\x1b]0;PWNED\\x07" in show.stdout


def test_replay_prints_agent_names_as_escapes_and_the_log_keeps_them(
    hostile_names: tuple[Path, Path, str],
) -> None:
    db, program, _ = hostile_names
    timeline = run_cli(["replay", "latest", "--db", db])
    assert timeline.returncode == 0 and hostile_free(timeline.stdout), repr(timeline.stdout)
    assert "evil\\x1b]0;PWNED" in timeline.stdout
    data = json.loads(run_cli(["show", "latest", "--db", db, "--json"]).stdout)
    assert data["program"] == str(program)
    [failed] = data["task_list"]["failed"]
    assert failed["agent"] == "evil" + HOSTILE


def test_the_tui_lists_and_details_show_escapes(hostile_db: tuple[Path, str]) -> None:
    db, _ = hostile_db

    async def go() -> None:
        app = MonitorApp(db)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot, app, 30)
            await pilot.press("8")  # failures
            await pilot.pause()
            failures = app.vlist("failures")
            [key] = keys_of(failures)
            row = " ".join(cells(failures, key))
            assert hostile_free(row) and "\\x1b]0;PWNED" in row, repr(row)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailScreen)
            shown = _rendered(app.screen)
            assert hostile_free(shown) and "\\x1b[2J" in shown, repr(shown)
            await pilot.press("escape", "6")  # the event log
            await pilot.pause()
            log = app.vlist("log")
            lines = [" ".join(cells(log, k)) for k in keys_of(log)]
            assert all(hostile_free(line) for line in lines), lines
            await pilot.press("4")  # artifacts: the copy's payload, in the list and its detail
            await pilot.pause()
            arts = app.vlist("artifacts")
            rows = [" ".join(cells(arts, k)) for k in keys_of(arts)]
            assert all(hostile_free(r) for r in rows), rows
            await pilot.press("home", "enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailScreen)
            assert hostile_free(_rendered(app.screen))

    asyncio.run(go())


def test_printable_leaves_text_and_layout_alone() -> None:
    for text in ("plain", "two\nlines\tand café 日本 🎉", ""):
        assert printable(text) == text
    assert printable("a\x00b\x7fc\x85d") == "a\\x00b\\x7fc\\x85d"
