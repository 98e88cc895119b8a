"""The CLI as a shell sees it: ``--version`` and shell completion, in a subprocess."""

from __future__ import annotations

from tests.conftest import run_cli


def test_version_prints_the_package_version() -> None:
    from flock_es import __version__

    out = run_cli(["--version"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"flock-es {__version__}\n"
    assert out.stderr == ""
