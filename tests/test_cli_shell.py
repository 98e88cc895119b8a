"""The CLI as a shell sees it: ``--version`` and shell completion, in a subprocess."""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, cli_env, run_cli


def test_version_prints_the_package_version() -> None:
    from flock_es import __version__

    out = run_cli(["--version"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"flock-es {__version__}\n"
    assert out.stderr == ""


def complete(shell: str, words: str, cword: int | None = None) -> list[str]:
    """Ask the CLI for completions exactly as the installed shell script does."""
    if shell == "bash":
        env = {"_FLOCK_ES_COMPLETE": "complete_bash", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(cword if cword is not None else len(words.split()))
    else:
        env = {"_FLOCK_ES_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": words}
    out = run_cli([], env=env)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return [line for line in out.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("runs")
    db = tmp / "runs.db"
    for example in ("chain.py", "news.py"):
        out = run_cli(["run", EXAMPLES / example, "--db", db, "-q"], cwd=tmp)
        assert out.returncode == 0, out.stderr
    con = sqlite3.connect(db)
    ids = [r for (r,) in con.execute("SELECT run_id FROM runs ORDER BY started_at")]
    con.close()
    return db, ids


# typer >= 0.29 guesses the shell of --show-completion/--install-completion from
# the parent process; this switch makes them take the shell as a value instead.
NO_DETECTION = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
SCRIPT_MARKS = {
    "bash": "complete -o default -F _flock_es_completion flock-es",
    "zsh": "compdef _flock_es_completion flock-es",
    "fish": "complete --command flock-es",
    "powershell": "Register-ArgumentCompleter -Native -CommandName flock-es",
    "pwsh": "Register-ArgumentCompleter -Native -CommandName flock-es",
}


@pytest.mark.slow  # 2 s: a completion script per shell
def test_completion_prints_the_script_for_the_shell_it_is_told() -> None:
    for shell, mark in SCRIPT_MARKS.items():
        out = run_cli(["completion", shell])
        assert out.returncode == 0 and out.stderr == "", (shell, out.stderr)
        assert mark in out.stdout, shell
        # the script calls flock-es back with the completion instruction for its shell
        instruction = "complete_powershell" if shell == "pwsh" else f"complete_{shell}"
        assert "_FLOCK_ES_COMPLETE" in out.stdout and instruction in out.stdout, shell


def test_completion_of_an_unknown_shell_is_one_line_and_exit_2() -> None:
    out = run_cli(["completion", "tcsh"])
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "flock-es: error: unknown shell 'tcsh': choose one of bash, zsh, fish, powershell, pwsh"
    ]


def test_show_completion_prints_the_same_script_when_the_shell_is_given() -> None:
    out = run_cli(["--show-completion", "bash"], env=NO_DETECTION)
    assert out.returncode == 0, out.stderr
    assert out.stdout == run_cli(["completion", "bash"]).stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_show_completion_detects_a_real_bash_parent() -> None:
    # "; true": bash -c would otherwise exec the last command and not stay its parent
    command = f"{shlex.quote(sys.executable)} -m flock_es.cli.app --show-completion; true"
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", command],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert SCRIPT_MARKS["bash"] in out.stdout


@pytest.mark.slow
def test_completion_install_writes_the_script_under_home(tmp_path: Path) -> None:
    out = run_cli(["completion", "bash", "--install"], env={"HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    script = tmp_path / ".bash_completions" / "flock-es.sh"
    assert out.stdout.splitlines()[0] == f"bash completion installed in {script}"
    assert script.read_text() == run_cli(["completion", "bash"]).stdout.rstrip("\n")
    assert str(script) in (tmp_path / ".bashrc").read_text()


@pytest.mark.slow
def test_install_completion_writes_the_script_under_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), **NO_DETECTION}
    out = run_cli(["--install-completion", "bash"], env=env)
    assert out.returncode == 0, out.stderr
    script = tmp_path / ".bash_completions" / "flock-es.sh"
    assert "_FLOCK_ES_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()


@pytest.mark.slow
def test_run_ids_complete_newest_first_from_the_given_db(two_runs: tuple[Path, list[str]]) -> None:
    db, (chain, news) = two_runs
    assert complete("bash", f"flock-es show --db {db} ", 4) == [news, chain, "latest"]
    assert complete("bash", f"flock-es replay --db {db} {news[:-3]}", 4) == [news]
    assert complete("bash", f"flock-es resume --db {db} lat", 4) == ["latest"]
    # zsh shows why each id is there: its status and program
    (line,) = [x for x in complete("zsh", f"flock-es fork --db {db} {news[:-2]}") if news in x]
    assert "completed · news.py" in line


@pytest.mark.slow
def test_run_ids_complete_from_flock_es_db_and_for_tui_run(
    two_runs: tuple[Path, list[str]],
) -> None:
    db, (chain, news) = two_runs
    env = {
        "_FLOCK_ES_COMPLETE": "complete_bash",
        "COMP_WORDS": "flock-es tui --run ",
        "COMP_CWORD": "3",
        "FLOCK_ES_DB": str(db),
    }
    out = run_cli([], env=env)
    assert out.stdout.splitlines() == [news, chain, "latest"]


@pytest.mark.slow
def test_completion_without_a_database_offers_nothing_and_stays_quiet(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    assert complete("bash", f"flock-es show --db {missing} ", 4) == []
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert complete("bash", f"flock-es show --db {garbage} ", 4) == []


@pytest.mark.slow
def test_completing_never_imports_litellm_or_textual(two_runs: tuple[Path, list[str]]) -> None:
    db, _ = two_runs
    env = cli_env(
        {"_FLOCK_ES_COMPLETE": "complete_bash", "COMP_WORDS": f"flock-es show --db {db} "}
    )
    env["COMP_CWORD"] = "4"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flock_es.cli.app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 3
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines()}
    assert "litellm" not in imported and "textual" not in imported


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_installed_bash_function_completes_run_ids(two_runs: tuple[Path, list[str]]) -> None:
    db, (chain, news) = two_runs
    script = run_cli(["completion", "bash"]).stdout
    probe = (
        f"{script}\nCOMP_WORDS=(flock-es show --db {db} '')\nCOMP_CWORD=4\n"
        "_flock_es_completion flock-es\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    env = cli_env({"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.splitlines() == [news, chain, "latest"], out.stderr


# The folder each shell's script goes in, under the home folder, and where to put a
# file that stands in its way (the folder itself, or one above it).
IN_THE_WAY = {"bash": ".bash_completions", "zsh": ".zfunc", "fish": ".config/fish"}


@pytest.mark.parametrize("shell", sorted(IN_THE_WAY))
def test_completion_install_where_a_file_stands_for_its_folder_is_one_line(
    tmp_path: Path, shell: str
) -> None:
    blocking = tmp_path / IN_THE_WAY[shell]
    blocking.parent.mkdir(parents=True, exist_ok=True)
    blocking.write_text("mine\n")
    out = run_cli(["completion", shell, "--install"], env={"HOME": str(tmp_path)})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"flock-es: error: cannot install the {shell} completion: "
        f"{blocking} is a file, where a folder must be"
    ]
    assert blocking.read_text() == "mine\n"
    # Nor is the shell told to load a script that was not written.
    assert not (tmp_path / ".bashrc").exists() and not (tmp_path / ".zshrc").exists()


@pytest.mark.parametrize("shell", ["powershell", "pwsh"])
def test_completion_install_without_powershell_is_one_line(tmp_path: Path, shell: str) -> None:
    # A PATH with no PowerShell on it (the CLI itself runs as sys.executable).
    env = {"HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    out = run_cli(["completion", shell, "--install"], env=env)
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith(f"flock-es: error: cannot install the {shell} completion: no `{shell}`")
    assert f"`flock-es completion {shell}` prints the script" in line
