"""``flock-es export`` / ``import``: a run travels to another database and replays there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, run_cli, run_cli_stderr_on_a_terminal


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("export")
    db = tmp / "src.db"
    assert run_cli(["run", EXAMPLES / "pipeline.py", "--db", db, "-q"]).returncode == 0
    out = tmp / "run.jsonl"
    res = run_cli(["export", "latest", "--db", db, "-o", out])
    assert res.returncode == 0, res.stderr
    return db, out


@pytest.mark.slow  # 4 s: export, import, show and replay in subprocesses
def test_export_import_then_show_and_replay_on_the_copy(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    src, file = exported
    lines = file.read_text().splitlines()
    header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    assert header["format"] == "flock-es-export" and trailer == {
        "end": True,
        "events": len(lines) - 2,
    }

    dst = tmp_path / "colleague.db"
    out = run_cli(["import", file, "--db", dst])
    assert out.returncode == 0, out.stderr
    assert header["run_id"] in out.stdout

    a = json.loads(run_cli(["show", "latest", "--db", src, "--json", "--payloads"]).stdout)
    b = json.loads(run_cli(["show", "latest", "--db", dst, "--json", "--payloads"]).stdout)
    for key in ("run_id", "status", "tasks", "totals", "batches", "program"):
        assert a[key] == b[key]
    strip = {t: [x["payload"] for x in v["artifacts"]] for t, v in a["artifacts"].items()}
    assert strip == {t: [x["payload"] for x in v["artifacts"]] for t, v in b["artifacts"].items()}

    replay = run_cli(["replay", "latest", "--db", dst, "--json", "--no-timeline"])
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["model_calls"] == 0

    again = run_cli(["import", file, "--db", dst])
    assert again.returncode == 2 and "already in" in again.stderr


def test_export_to_stdout_has_no_secrets(exported: tuple[Path, Path]) -> None:
    src, _ = exported
    out = run_cli(["export", "latest", "--db", src])
    assert out.returncode == 0
    assert out.stdout.count("\n") > 100
    assert "sk-" not in out.stdout and "Bearer" not in out.stdout


def test_export_dash_means_stdout(exported: tuple[Path, Path], tmp_path: Path) -> None:
    src, file = exported
    out = run_cli(["export", "latest", "--db", src, "-o", "-"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == file.read_text(encoding="utf-8")
    assert not (tmp_path / "-").exists()


@pytest.mark.slow
def test_broken_exports_are_refused_whole(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, file = exported
    text = file.read_text()
    lines = text.splitlines(keepends=True)
    cases = {
        "cut.jsonl": (text[: len(text) // 2], "not valid JSON"),
        "no_end.jsonl": ("".join(lines[:-1]), "truncated export"),
        "dropped.jsonl": ("".join(lines[:5] + lines[6:]), "truncated or edited"),
        "garbage.jsonl": (
            "".join(lines[:3]) + "{oops\n" + "".join(lines[3:]),
            ":4: not valid JSON",
        ),
        "kind.jsonl": (
            "".join(lines[:2]) + lines[2].replace('"kind":"', '"kind":"x.') + "".join(lines[3:]),
            "unknown event kind",
        ),
        "body.jsonl": (
            "".join(lines[:1]) + lines[1].replace('"model":', '"modelx":', 1) + "".join(lines[2:]),
            "run.started body",
        ),
        "empty.jsonl": ("", "empty file"),
        "other.jsonl": ('{"hello": 1}\n', "not a flock-es export"),
    }
    dst = tmp_path / "dst.db"
    for name, (content, message) in cases.items():
        bad = tmp_path / name
        bad.write_text(content)
        out = run_cli(["import", bad, "--db", dst])
        assert out.returncode == 2, name
        assert message in out.stderr and name in out.stderr, (name, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    assert not dst.exists() or "no runs" in run_cli(["runs", "--db", dst]).stdout


def test_import_reports_each_phase_to_its_progress(
    exported: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flock_es.log import export

    monkeypatch.setattr(export, "PROGRESS_EVERY", 10)
    heard: list[tuple[str, int, int | None]] = []
    _, n = export.import_run(exported[1], tmp_path / "x.db", lambda *a: heard.append(a))
    phases = [p for p, _, _ in heard]
    assert phases == sorted(phases, key=["checking", "importing", "verifying"].index)
    for phase in ("checking", "importing", "verifying"):
        mine = [(done, total) for p, done, total in heard if p == phase]
        assert mine[0] == (0, n) and mine[-1] == (n, n) and len(mine) > 2
        assert [d for d, _ in mine] == sorted(d for d, _ in mine)


def test_import_on_a_terminal_shows_a_line_that_goes_when_done(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    out, text = run_cli_stderr_on_a_terminal(["import", exported[1], "--db", tmp_path / "t.db"])
    assert out.returncode == 0 and "imported run" in out.stdout  # stdout: the result alone
    assert "checking 0 of" in text and "verifying" in text
    assert text.endswith("\r\x1b[K")  # the progress line is cleared at the end


def test_export_reports_its_progress(
    exported: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flock_es.log import export
    from flock_es.log.reader import LogReader

    monkeypatch.setattr(export, "PROGRESS_EVERY", 10)
    heard: list[tuple[str, int, int | None]] = []
    with LogReader(exported[0]) as reader:
        run = reader.runs()[0].run_id
        n = export.export_to_file(reader, run, tmp_path / "x.jsonl", lambda *a: heard.append(a))
    assert {p for p, _, _ in heard} == {"exporting"} and len(heard) > 2
    assert heard[0][1:] == (0, n) and heard[-1][1:] == (n, n)
    assert [d for _, d, _ in heard] == sorted(d for _, d, _ in heard)


def test_export_on_a_terminal_shows_a_line_that_goes_when_done(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    """A large run's export takes seconds (13 s for 2.6M events): on a terminal it says
    how far it has come, on stderr; to a file or to stdout alike."""
    target = tmp_path / "t.jsonl"
    out, text = run_cli_stderr_on_a_terminal(
        ["export", "latest", "--db", exported[0], "-o", target]
    )
    assert out.returncode == 0 and target.read_text() == exported[1].read_text()
    # The line goes, and the result takes its place.
    assert "exporting 0 of" in text and text.rstrip().endswith(f"to {target}")
    assert "\r\x1b[Kexported " in text
    out, text = run_cli_stderr_on_a_terminal(["export", "latest", "--db", exported[0]])
    assert out.returncode == 0 and out.stdout == exported[1].read_text()
    assert "exporting 0 of" in text and text.endswith("\r\x1b[K")
