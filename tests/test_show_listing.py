"""``show --json`` and ``--payloads`` print, byte for byte, what they printed when they
folded the run's full state, on runs of every shape the examples and test programs
make: batches, joins, partitions, deferred publishes, a fork; and at a seq in the
middle of each. They fold compactly from event 0 and keep what they list in a
temporary file (``flock_es.cli.show_listing``)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flock_es.cli.phase_line import PhaseLine
from flock_es.cli.show_listing import dumps_at, print_payloads, write_json
from flock_es.cli.show_render import print_show, show_data
from flock_es.log.ports import open_store
from flock_es.runtime.resume import load_run
from tests.conftest import run_cli, run_cli_stderr_on_a_terminal

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = [
    "examples/pipeline.py",
    "examples/routing.py",
    "examples/components.py",
    "tests/programs/deferred_publish.py",
    "tests/programs/join_program.py",
    "tests/programs/partitions.py",
    "tests/programs/batch_deadline.py",
    "tests/programs/gates_crash.py",
    "tests/programs/named_types.py",
]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log holding a run of each program, and a fork of the first one."""
    db = tmp_path_factory.mktemp("shapes") / "shapes.db"
    for program in PROGRAMS:
        out = run_cli(["run", ROOT / program, "--db", db, "-q"])
        assert out.returncode == 0, (program, out.stderr)
    with open_store(db).reader() as log:
        first = log.runs()[0].run_id
        middle = log.first_seq(first) + 20
    out = run_cli(["fork", first, "--at", str(middle), "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    return db


def _full(db: Path, run: str, at: int | None, payloads: bool, as_json: bool) -> str:
    """What ``show`` printed from the full fold."""
    with open_store(db).reader() as log:
        state = load_run(log, run, at)
        before_end = at is not None and at < log.last_seq(run)
    data = show_data(state, payloads, before_end)
    if as_json:
        return json.dumps(data, indent=2, default=str) + "\n"
    out = io.StringIO()
    with redirect_stdout(out):
        print_show(data, payloads)
    return out.getvalue()


@pytest.mark.slow  # 9 programs and a fork in subprocesses: about 10 s
def test_every_shape_prints_what_the_full_fold_printed(shapes: Path) -> None:
    with open_store(shapes).reader() as log:
        runs = [r.run_id for r in log.runs()]
        assert len(runs) == len(PROGRAMS) + 1
        assert log.runs()[-1].parent_run == runs[0]  # the fork
        for run in runs:
            first, last = log.first_seq(run), log.last_seq(run)
            for at in (None, (first + last) // 2):
                for payloads in (False, True):
                    text = io.StringIO()
                    write_json(log, run, at, text, payloads)
                    assert text.getvalue() == _full(shapes, run, at, payloads, True), (run, at)
                out = io.StringIO()
                with redirect_stdout(out):
                    print_payloads(log, run, at)
                assert out.getvalue() == _full(shapes, run, at, True, False), (run, at)


def test_a_run_with_nothing_yet_lists_empty_sections(tmp_path: Path) -> None:
    """The empty objects and arrays print as ``json.dumps`` prints them: ``{}``, ``[]``."""
    db = tmp_path / "one.db"
    out = run_cli(["run", ROOT / "examples/routing.py", "--db", db, "-q"])
    assert out.returncode == 0, out.stderr
    with open_store(db).reader() as log:
        run = log.runs()[0].run_id
        first = log.first_seq(run)
        text = io.StringIO()
        write_json(log, run, first, text)
    assert text.getvalue() == _full(db, run, first, False, True)
    data = json.loads(text.getvalue())
    assert data["artifacts"] == {} and data["task_list"] == {} and data["tool_calls"] == []


@pytest.mark.slow
def test_show_json_on_a_terminal_says_how_far_its_reading_has_come(tmp_path: Path) -> None:
    """Folding a 2.6M-event run for ``show --json`` takes some 29 s: on a terminal,
    stderr says how far it has come, and the line goes before the document comes (the
    document itself is the same). The text view of ``show`` leaves stderr empty."""
    db = tmp_path / "news.db"
    assert run_cli(["run", ROOT / "examples/news.py", "--db", db, "-q"]).returncode == 0
    with open_store(db).reader() as log:
        events = log.runs()[0].events
    plain = run_cli(["show", "latest", "--json", "--db", db])
    for args in (["--json"], ["--payloads"]):
        out, screen = run_cli_stderr_on_a_terminal(["show", "latest", *args, "--db", db])
        assert out.returncode == 0
        assert f"reading 0 of {events:,} events" in screen, screen
        assert f"reading {events:,} of {events:,} events" in screen
        assert screen.endswith("\r\x1b[K")
    out, screen = run_cli_stderr_on_a_terminal(["show", "latest", "--json", "--db", db])
    assert out.stdout == plain.stdout
    # The document went to a pipe, so its writing has a line too: every artifact and task.
    doc = json.loads(out.stdout)
    entries = sum(t["count"] for t in doc["artifacts"].values())
    entries += sum(len(ts) for ts in doc["task_list"].values())
    assert f"writing 0 of {entries:,} entries" in screen, screen
    assert screen.rstrip("\r\x1b[K").endswith(f"writing {entries:,} of {entries:,} entries")
    out, screen = run_cli_stderr_on_a_terminal(["show", "latest", "--db", db])
    assert out.returncode == 0 and screen == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_show_json_to_the_terminal_has_no_writing_line(tmp_path: Path) -> None:
    """To the terminal the line would land amid the document: only the reading has one."""
    db = tmp_path / "news.db"
    assert run_cli(["run", ROOT / "examples/news.py", "--db", db, "-q"]).returncode == 0
    heard: list[tuple[str, ...]] = []

    class Line(PhaseLine):
        def __call__(self, phase: str, done: int, total: int | None, unit: str = "events") -> None:
            heard.append((phase, unit))

    with open_store(db).reader() as log:
        for out, phases in ((_Terminal(), {"reading"}), (io.StringIO(), {"reading", "writing"})):
            heard.clear()
            write_json(log, log.resolve_run("latest"), None, out, False, Line())
            assert {p for p, _ in heard} == phases
            assert json.loads(out.getvalue())


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text() | st.integers() | st.booleans() | st.none(), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(value=_JSON, level=st.integers(0, 5))
def test_a_value_renders_as_json_dumps_renders_it_in_place(value: object, level: int) -> None:
    whole = json.dumps({"k": value}, indent=2, default=str)
    assert f'{{\n  "k": {dumps_at(value, 1)}\n}}' == whole
    assert dumps_at(value, level) == json.dumps(value, indent=2).replace("\n", "\n" + "  " * level)
