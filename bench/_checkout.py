"""The flock-es checkout a profile script measures: ``--root DIR`` (A/B runs), else
the one it is part of. Call ``use_checkout()`` before importing ``flock_es``.

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root
    from bench._checkout import use_checkout
    ROOT = use_checkout()
    from bench._callgrind import run_script
    from flock_es import Flock

Import it as ``bench._checkout`` before calling ``use_checkout()``: that import makes
the ``bench`` package this checkout's, so ``bench._callgrind`` imported after it comes
from here too, while ``--root BASE`` puts BASE first on the path for ``flock_es``
(BASE's own ``bench`` package may not have these modules).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["checkout_cli", "use_checkout"]


def use_checkout(argv: list[str] | None = None) -> str | None:
    """Put the checkout to measure first on ``sys.path``; returns ``--root``'s DIR, if given
    (anywhere in ``argv``, default ``sys.argv``)."""
    args = sys.argv if argv is None else argv
    at = args.index("--root") + 1 if "--root" in args else 0
    root = args[at] if 0 < at < len(args) else None
    sys.path.insert(0, root or str(Path(__file__).resolve().parent.parent))
    return root


def checkout_cli(
    root: str | None, cwd: Path, *args: object, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``flock-es ARGS`` from this checkout, or from ``root``'s, in ``cwd`` (not the
    checkout's folder: ``python -m`` puts its working folder before PYTHONPATH), with
    ``env`` added and its output dropped."""
    path = root or str(Path(__file__).resolve().parent.parent)
    full = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": path,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flock_es.cli.app", *map(str, args)],
        cwd=cwd,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
