"""Machine facts printed by every benchmark."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any


def help_or_bad_args(doc: str | None, allowed: set[str] | None = None) -> None:
    """``-h``/``--help`` prints the benchmark's docstring and exits 0; an argument
    outside ``allowed`` (no arguments at all when None) is one line and exit 2.

    For the benchmarks that take no options, so that asking them for help never
    starts minutes of measuring.
    """
    args = sys.argv[1:]
    if "-h" in args or "--help" in args:
        print((doc or "").strip())
        raise SystemExit(0)
    unknown = [a for a in args if allowed is None or a not in allowed]
    if unknown:
        choices = f"; choose from {', '.join(sorted(allowed))}" if allowed else ""
        print(
            f"{Path(sys.argv[0]).name}: error: unknown argument {unknown[0]}{choices}",
            file=sys.stderr,
        )
        raise SystemExit(2)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"machine: {platform.system()} {platform.release()} · {cpu} · {os.cpu_count()} cpus · "
        f"Python {sys.version.split()[0]}"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_usage(proc: subprocess.Popen[Any]) -> tuple[int, float, float]:
    """Wait for ``proc``: its exit status, peak RSS (MB) and CPU seconds (user +
    system), its own (``wait4``'s rusage, not every child's)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def hwm_mb(pid: int) -> float | None:
    """The peak RSS (VmHWM) of process ``pid`` so far, in MB; None once it is gone or
    a zombie (or not on Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def add_sizes(ap: argparse.ArgumentParser) -> None:
    """``--sizes``: artifacts per size, the scale benchmarks' 2,000, 20,000 and 100,000."""
    ap.add_argument(
        "--sizes",
        default="2000,20000,100000",
        help="artifacts per size, comma-separated (default: 2000,20000,100000)",
    )
