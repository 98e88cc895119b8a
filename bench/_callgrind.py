"""Callgrind for the profile_* scripts: run a script under valgrind, one output file per
thread, and read the instructions each file counts.

    from bench._callgrind import instructions, run_script
    run_script(prefix, [script, "--items", "250"])
    main_thread = instructions(glob.glob(prefix + "*-01")[0])

With ``--root BASE`` the scripts put another checkout first on the path, whose ``bench``
package may not have this module: they import ``bench._checkout`` before that (see
its docstring), so the ``bench`` package, and this module, are this checkout's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

__all__ = ["inclusive", "instructions", "run_script"]


def run_script(
    prefix: str,
    argv: list[str],
    *,
    toggle: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    instr_atstart: bool = True,
) -> None:
    """Run ``python ARGV`` under callgrind, each thread's counts in ``PREFIX.<pid>-NN``;
    ``toggle``: count only inside the functions it matches (``--toggle-collect``);
    ``instr_atstart=False``: count only once the script switches counting on
    (``callgrind_control -i on PID``; a file's count is then on its ``totals:`` line)."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        *([f"--toggle-collect={toggle}"] if toggle else []),
        *([] if instr_atstart else ["--instr-atstart=no"]),
        f"--callgrind-out-file={prefix}.%p",
        sys.executable,
        *argv,
    ]
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=cwd)


def instructions(path: str) -> int:
    """The instructions one callgrind output file counts (its summary line)."""
    text = Path(path).read_text(errors="replace")
    m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    if m is None:
        raise SystemExit(f"no summary line in {path}")
    return int(m.group(1))


def inclusive(path: str, symbol: str) -> int:
    """The instructions one callgrind output file counts in ``symbol`` and what it
    calls (``callgrind_annotate --inclusive=yes``); 0 if it never ran.

    ``inclusive(writer_file, "sqlite3_step")``: what the SQLite writer thread ran
    without the GIL (CPython releases it around each step, and only there)."""
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(rf"^\s*([\d,]+) \([\d.]+%\)\s+\S*:{re.escape(symbol)}[\s\[]", out, re.M)
    return int(m.group(1).replace(",", "")) if m else 0
