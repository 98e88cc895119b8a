"""Machine facts printed by every benchmark."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys


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


def median(xs: list[float]) -> float:
    return statistics.median(xs)
