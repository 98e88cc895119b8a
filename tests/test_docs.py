"""Every fenced code block in README.md and docs/*.md is executed (eventsourcing's
docs-test pattern), so the documentation cannot drift from the code.

How each block is run, by its info string:

- ``python``: all python blocks of one file, in order, form one program, run in
  a subprocess in a temporary directory (a copy of examples/, ``$FLOCK_ES_DB``
  a fresh database). Line numbers are kept, so a traceback names the markdown
  file and line. Top-level ``await`` is allowed (the program then runs inside
  ``asyncio.run``). Definitions a snippet needs but should not show go in a
  hidden setup comment just before it::

      <!-- setup
      class Story(BaseModel): ...
      -->

- ``bash`` / ``sh`` / ``shell``: every ``flock-es ...`` command (after
  ``VAR=value`` prefixes, ``export VAR=value`` lines and ``&&`` chains are
  honoured) runs in order in the same temporary directory and must exit 0.
  Install and environment lines (pip, venv, pytest, ...) are not run.
- ``console`` (or no info string) whose lines start with ``$ ``: a transcript;
  each ``$`` command runs and every expected line after it must appear in its
  output (a line ``...`` stands for any output).
- no info string, lines starting with ``flock-es``: a usage synopsis; the
  command must exist and each option it names must be in its ``--help``.
- ``json``: data shown as it is sent or stored; it must parse.
- ``text``: a diagram or an illustration with placeholders (a remote host); shown
  as is, not run. Prefer one of the kinds above whenever the block can run here.
- A hidden ``<!-- file NAME`` ... ``-->`` comment writes NAME (e.g. a small
  program a transcript runs) into the temporary directory of that file's
  shell and console blocks.
- anything else fails: give the block one of the info strings above.

To skip a block, put ``<!-- no-test: the reason -->`` on the line before its
fence. Use it only for what cannot run here (an API key, the network, a
terminal UI).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT, cli_env

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
NO_TEST = re.compile(r"^\s*<!--\s*no-test\b")
SHELL = {"bash", "sh", "shell"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the first line of code
    info: str
    lines: list[str]
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, and the hidden setup comments as ``setup`` blocks."""
    text = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(text):
        line = text[i]
        if line.strip().startswith("<!-- file "):
            end = next(j for j in range(i + 1, len(text)) if text[j].strip() == "-->")
            name = line.strip()[len("<!-- file ") :].strip()
            blocks.append(Block(path, i + 2, f"file:{name}", text[i + 1 : end], None))
            i = end + 1
            continue
        if line.strip() == "<!-- setup":
            end = next(j for j in range(i + 1, len(text)) if text[j].strip() == "-->")
            blocks.append(Block(path, i + 2, "setup", text[i + 1 : end], None))
            i = end + 1
            continue
        m = FENCE.match(line)
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        end = next(
            (j for j in range(i + 1, len(text)) if text[j].strip().startswith(fence)),
            len(text),
        )
        before = next((text[j] for j in range(i - 1, -1, -1) if text[j].strip()), "")
        skip = before.strip() if NO_TEST.match(before) else None
        body = [x[len(m.group("indent")) :] for x in text[i + 1 : end]]
        blocks.append(Block(path, i + 2, m.group("info").lower(), body, skip))
        i = end + 1
    return blocks


ALL = [b for p in DOC_FILES for b in parse(p)]
RUNNABLE = [b for b in ALL if not b.info.startswith(("setup", "file:")) and b.skip is None]


def kind(block: Block) -> str:
    first = next((x for x in block.lines if x.strip()), "")
    if block.info == "python":
        return "python"
    if block.info in SHELL:
        return "shell"
    if block.info in ("console", "") and first.startswith("$ "):
        return "console"
    if block.info == "" and first.startswith("flock-es"):
        return "synopsis"
    if block.info == "json":
        return "json"
    if block.info == "text":
        return "text"
    return "unknown"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "data").mkdir()
    return tmp_path


def docs_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return cli_env({"FLOCK_ES_DB": str(workdir / "docs.db"), **(extra or {})})


def test_every_block_is_runnable_or_says_why_not() -> None:
    unknown = [b.id for b in RUNNABLE if kind(b) == "unknown"]
    assert not unknown, f"give these blocks an info string the docs test knows: {unknown}"
    assert [b for b in ALL if b.info == "python"], "the docs have python blocks"


# python -----------------------------------------------------------------------

RUNNER = """
import ast, asyncio, inspect, sys, types
path, doc = sys.argv[1], sys.argv[2]
code = compile(open(path).read(), doc, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
main = types.ModuleType("__main__")
main.__file__ = doc
sys.modules["__main__"] = main
if code.co_flags & inspect.CO_COROUTINE:
    asyncio.run(eval(code, main.__dict__))
else:
    exec(code, main.__dict__)
"""


def program_of(path: Path) -> str | None:
    """The python blocks and setup comments of ``path`` at their own line numbers."""
    parts = [b for b in parse(path) if b.skip is None and b.info in ("python", "setup") and b.lines]
    if not any(b.info == "python" for b in parts):
        return None
    total = len(path.read_text().splitlines())
    out = [""] * total
    for b in parts:
        for k, line in enumerate(b.lines):
            out[b.line - 1 + k] = line
    return "\n".join(out) + "\n"


PY_FILES = [p for p in DOC_FILES if program_of(p) is not None]
# docs/mcp.md starts its MCP servers in subprocesses (5 s): slow; tests/test_mcp.py stays quick.
SLOW_DOCS = {"docs/mcp.md"}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            p,
            id=str(p.relative_to(ROOT)),
            marks=[pytest.mark.slow] if str(p.relative_to(ROOT)) in SLOW_DOCS else [],
        )
        for p in PY_FILES
    ],
)
def test_python_blocks_run_as_one_program(path: Path, workdir: Path) -> None:
    program = workdir / "doc_program.py"
    program.write_text(program_of(path) or "")
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, str(program), str(path)],
        cwd=workdir,
        env=docs_env(workdir),
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, f"{path.relative_to(ROOT)}:\n{out.stderr[-3000:]}"


# shell ------------------------------------------------------------------------


def write_files(path: Path, workdir: Path) -> None:
    """The hidden ``<!-- file NAME -->`` files of the doc at ``path``."""
    for b in parse(path):
        if b.info.startswith("file:"):
            (workdir / b.info[len("file:") :]).write_text("\n".join(b.lines) + "\n")


def commands(lines: list[str]) -> list[str]:
    """Logical command lines: continuations joined, blanks and comments dropped."""
    out: list[str] = []
    buf = ""
    for raw in lines:
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = (buf + line).strip()
        try:
            shlex.split(line, comments=True)
        except ValueError:  # a quoted argument goes on over the next line
            buf = line + "\n"
            continue
        buf = ""
        if line and not line.startswith("#"):
            out.append(line)
    return out


def flock_es(
    tokens: list[str], workdir: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *tokens],
        cwd=workdir,
        env=docs_env(workdir, env),
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


Invocation = tuple[dict[str, str], list[str]]


def split_command(line: str, env: dict[str, str]) -> list[Invocation]:
    """The ``flock-es`` invocations of one command line (their ``VAR=value``
    prefixes and arguments); ``export``s update ``env``."""
    runs: list[Invocation] = []
    tokens = shlex.split(line, comments=True)
    segments: list[list[str]] = [[]]
    for t in tokens:
        if t in ("&&", ";"):
            segments.append([])
        else:
            segments[-1].append(t)
    for seg in segments:
        local: dict[str, str] = {}
        if seg[:1] == ["export"]:
            env.update(dict(a.split("=", 1) for a in seg[1:] if "=" in a))
            continue
        while seg and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", seg[0]):
            k, v = seg.pop(0).split("=", 1)
            local[k] = v
        if seg[:1] == ["flock-es"]:
            runs.append((local, seg[1:]))
    return runs


def run_line(
    call: Invocation, workdir: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    local, args = call
    return flock_es(args, workdir, {**env, **local})


SHELL_BLOCKS = [b for b in RUNNABLE if kind(b) == "shell"]


@pytest.mark.slow
@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.id for b in SHELL_BLOCKS])
def test_shell_blocks_run(block: Block, workdir: Path) -> None:
    write_files(block.path, workdir)
    env: dict[str, str] = {}
    for line in commands(block.lines):
        for call in split_command(line, env):
            out = run_line(call, workdir, env)
            assert out.returncode == 0, (
                f"{block.id}: `{line}` exited {out.returncode}\n{out.stderr}"
            )


# console transcripts ----------------------------------------------------------

CONSOLE_BLOCKS = [b for b in RUNNABLE if kind(b) == "console"]


def transcript(lines: list[str]) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip():
            steps[-1][1].append(line.rstrip())
    return steps


@pytest.mark.slow
@pytest.mark.parametrize("block", CONSOLE_BLOCKS, ids=[b.id for b in CONSOLE_BLOCKS])
def test_console_transcripts_print_what_they_show(block: Block, workdir: Path) -> None:
    write_files(block.path, workdir)
    env: dict[str, str] = {}
    for command, expected in transcript(block.lines):
        for call in split_command(command, env):
            out = run_line(call, workdir, env)
            got = [x.rstrip() for x in (out.stdout + out.stderr).splitlines()]
            for want in expected:
                if want.strip() == "...":
                    continue
                assert want in got, f"{block.id}: `{command}` did not print\n{want}\ngot:\n" + (
                    "\n".join(got)
                )


# synopses ---------------------------------------------------------------------

SYNOPSES = [b for b in RUNNABLE if kind(b) == "synopsis"]


@pytest.mark.slow
@pytest.mark.parametrize("block", SYNOPSES, ids=[b.id for b in SYNOPSES])
def test_usage_synopses_match_the_help(block: Block, workdir: Path) -> None:
    for line in commands(block.lines):
        words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
        sub = words[1]
        out = flock_es([sub, "--help"], workdir, {"COLUMNS": "200"})
        assert out.returncode == 0, f"{block.id}: no command `flock-es {sub}`\n{out.stderr}"
        for w in words[2:]:
            if re.match(r"^--?[A-Za-z]", w):
                option = w.split("=", 1)[0]
                assert option in out.stdout, f"{block.id}: `flock-es {sub}` has no {option}"


# data -------------------------------------------------------------------------

JSON_BLOCKS = [b for b in RUNNABLE if kind(b) == "json"]


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[b.id for b in JSON_BLOCKS])
def test_json_blocks_parse(block: Block) -> None:
    json.loads("\n".join(block.lines))
