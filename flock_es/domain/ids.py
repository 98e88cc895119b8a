"""Deterministic identities (DESIGN.md, "Deterministic identities").

A task id is a digest of what the task is (run, agent, subscription, inputs), so
the same inputs can never schedule the same subscription twice, and a
re-executed task produces the same output ids.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from hashlib import blake2b

__all__ = ["content_hash", "external_artifact_id", "new_run_id", "output_id", "task_id"]


def _digest(*parts: str, size: int = 16) -> str:
    # Each part followed by a unit separator, hashed in one call (the ids of every
    # existing log depend on exactly these bytes).
    data = "\x1f".join(parts).encode() + b"\x1f"
    return hashlib.blake2b(data, digest_size=size).hexdigest()


# The empty 10-byte digest both ids start from: a copy of it, then the bytes, is the
# same digest as ``blake2b(data, digest_size=10)``, without the constructor's keyword
# parsing and parameter block (some 600 instructions an id, two ids a run: issue 14).
_EMPTY_10 = blake2b(digest_size=10)


def task_id(run_id: str, agent: str, sub_index: int, inputs: Iterable[str]) -> str:
    """``t-`` + digest(run id, agent, subscription index, input artifact ids)."""
    # _digest(run_id, agent, str(sub_index), *inputs, size=10), spelled out as in
    # ``output_id``: the same bytes, a call less (once per task).
    h = _EMPTY_10.copy()
    h.update("\x1f".join([run_id, agent, str(sub_index), *inputs]).encode() + b"\x1f")
    return "t-" + h.hexdigest()


def output_id(task: str, position: int) -> str:
    """The id of the ``position``-th output of ``task``: stable across re-execution."""
    # _digest(task, str(position), size=10), spelled out: the same bytes, fewer calls.
    h = _EMPTY_10.copy()
    h.update(f"{task}\x1f{position}\x1f".encode())
    return "a-" + h.hexdigest()


def external_artifact_id() -> str:
    """Random id for an artifact published from outside a run; it is recorded."""
    return "a-" + secrets.token_hex(10)


def new_run_id(now: float | None = None) -> str:
    """A sortable, typable run id such as ``r-20261128-032512-9f3a1c``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"r-{stamp}-{secrets.token_hex(3)}"


def content_hash(data: bytes) -> str:
    """Digest of a program file, recorded so replay can warn when code changed."""
    return hashlib.sha256(data).hexdigest()[:16]
