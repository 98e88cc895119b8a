"""Snapshots of the folded state: where resume and ``show --at`` start folding.

A snapshot at ``seq`` is ``fold(events up to seq)``, encoded. It is a read
model and never the source of truth: ``decode`` accepts only bytes it can vouch
for (its own header, the current layout of ``RunState`` and the current
flock-es version, classes of the state only) and returns None for anything
else: damaged, from another version, or foreign. The caller then folds from
the log, as it would with no snapshot at all.

Example::

    data = encode(state)                 # stored with the seq it was taken at
    restored = decode(data)              # None: fold from event 0 instead
    assert restored == state
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import operator
import pickle
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flock_es._version import __version__
from flock_es.domain.events import TaskStatus
from flock_es.projection import state as state_module
from flock_es.projection.fold_compact import compacted
from flock_es.projection.state import RunState

__all__ = ["SNAPSHOT_EVERY", "collector_paused", "decode", "encode", "fingerprint"]

SNAPSHOT_EVERY = 20_000
"""Events folded past the latest snapshot before a new one is worth writing."""

_MAGIC = b"FESNAP1\n"
_STATE_CLASSES: dict[str, type] = {
    name: obj
    for name in state_module.__all__
    if isinstance(obj := getattr(state_module, name), type) and dataclasses.is_dataclass(obj)
}


# The fold's own code: a snapshot written by another fold may differ from this one's.
_FOLD_MODULES = (
    "fold.py",
    "fold_compact.py",
    "fold_gates.py",
    "fold_components.py",
    "state.py",
    "snapshot.py",
)


def fingerprint() -> bytes:
    """16 bytes naming the state's layout and the fold that made it.

    A snapshot taken by another flock-es version or another fold (its source
    differs) or with other fields is stale: it may not equal the fold of its
    prefix any more, so it is ignored.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(__version__.encode())
    here = Path(__file__).resolve().parent
    for module in _FOLD_MODULES:
        try:
            h.update((here / module).read_bytes())
        except OSError:  # no source (a frozen install): the version and layout decide
            h.update(module.encode())
    for name in sorted(_STATE_CLASSES):
        h.update(name.encode())
        for f in dataclasses.fields(_STATE_CLASSES[name]):
            h.update(f"{f.name}:{f.type}".encode())
    h.update(",".join(s.value for s in TaskStatus).encode())
    return h.digest()


_FINGERPRINT = fingerprint()


def _reducer(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]]:
    get = operator.attrgetter(*(f.name for f in dataclasses.fields(cls)))
    return lambda obj: (cls, get(obj))


# Each view pickles as its class and its field values, rebuilt by calling the class:
# the dataclasses' own (slots) pickling goes through Python per object, 3x slower.
_REDUCERS = {cls: _reducer(cls) for cls in _STATE_CLASSES.values()}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection for the duration (then as it was).

    For building or walking a large state, which allocates many objects and frees
    few: the collector would rescan the growing heap again and again, more than
    doubling the time (a 660,000-event fold: 3.8 -> 2.6 CPU-s; decoding its
    snapshot: 2.0 -> 0.45 CPU-s).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Compressing:
    """A file the pickler writes to, compressed as it goes: the whole pickle of a
    large state (tens of MB) is never held, only its compressed bytes."""

    def __init__(self) -> None:
        self.z = zlib.compressobj(1)
        self.chunks: list[bytes] = [_MAGIC, _FINGERPRINT]

    def write(self, data: bytes | memoryview) -> int:
        out = self.z.compress(data)
        if out:
            self.chunks.append(out)
        return len(data)

    def getvalue(self) -> bytes:
        self.chunks.append(self.z.flush())
        return b"".join(self.chunks)


# What the second part of a snapshot restores over its first (``encode``).
_REST = (
    "artifacts",
    "by_type",
    "tasks",
    "calls",
    "tool_calls",
    "rewritten_inputs",
    "mcp_tools",
    "compact",
    "finished",
    "prune_at",
)


def _core(state: RunState) -> RunState:
    """``compacted`` of a copy of ``state`` that shares its views (only the dicts a
    compaction edits are copied): what a resume keeps of it."""
    return compacted(
        dataclasses.replace(
            state,
            artifacts=dict(state.artifacts),
            tasks=dict(state.tasks),
            calls=dict(state.calls),
            tool_calls=dict(state.tool_calls),
            rewritten_inputs=dict(state.rewritten_inputs),
            mcp_tools=dict(state.mcp_tools),
        )
    )


def encode(state: RunState) -> bytes:
    """The bytes of a snapshot of ``state`` (header, fingerprint, compressed pickles).

    Two pickles, one memo: first the compact state (``_core``), then the fields
    that make it ``state`` again (``_REST``; the views both hold are written once).
    A resume decodes only the first (``decode(compact=True)``), so its memory is
    what the open work needs, not the whole run at the snapshot (issue 14)."""
    out = _Compressing()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.dispatch_table = _REDUCERS
    with collector_paused():
        pickler.dump(_core(state))
        pickler.dump(tuple(getattr(state, name) for name in _REST))
    return out.getvalue()


class _StateUnpickler(pickle.Unpickler):
    """Builds only the state's own classes: a snapshot can never run other code."""

    def find_class(self, module: str, name: str) -> Any:
        if module == state_module.__name__ and name in _STATE_CLASSES:
            return _STATE_CLASSES[name]
        if module == TaskStatus.__module__ and name == TaskStatus.__name__:
            return TaskStatus
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a snapshot")


class _Decompressing:
    """A file the unpickler reads from, decompressed as it goes: the whole pickle of
    a large state is never held, only the piece being read (and the state built)."""

    _PIECE = 1 << 16

    def __init__(self, data: memoryview) -> None:
        self.z = zlib.decompressobj()
        self.src = data
        self.pos = 0
        self.buf = bytearray()
        self.off = 0

    def _fill(self, n: int) -> None:
        """Decompress until ``n`` bytes are buffered or the data ends."""
        while len(self.buf) - self.off < n:
            if self.pos < len(self.src):
                out = self.z.decompress(self.src[self.pos : self.pos + self._PIECE])
                self.pos += self._PIECE
            else:
                out = self.z.flush()
                if not out:
                    return
            if self.off:
                del self.buf[: self.off]
                self.off = 0
            self.buf += out

    def read(self, n: int = -1) -> bytes:
        self._fill(n if n >= 0 else len(self.src) * 1024)
        out = bytes(self.buf[self.off : self.off + n] if n >= 0 else self.buf[self.off :])
        self.off += len(out)
        return out

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drained(self) -> bool:
        """Whether the compressed data ends intact (checksum and all), decompressing the
        rest without keeping it: a compact decode checks what it does not build."""
        self.buf, self.off = bytearray(), 0
        while self.pos < len(self.src):
            tail = self.src[self.pos : self.pos + self._PIECE]
            self.pos += self._PIECE
            while tail and not self.z.eof:
                self.z.decompress(tail, self._PIECE)
                tail = memoryview(self.z.unconsumed_tail)
        return self.z.eof and not self.z.unused_data and self.pos >= len(self.src)

    def complete(self) -> bool:
        """Whether the compressed data ended where the pickle did, checksum and all."""
        self._fill(len(self.buf) - self.off + 1)
        return self.z.eof and len(self.buf) == self.off and not self.z.unused_data

    def readline(self) -> bytes:
        while True:
            end = self.buf.find(b"\n", self.off)
            if end >= 0:
                return self.read(end + 1 - self.off)
            have = len(self.buf) - self.off
            self._fill(have + self._PIECE)
            if len(self.buf) - self.off == have:
                return self.read(have)


def decode(data: bytes | memoryview | None, compact: bool = False) -> RunState | None:
    """The state in ``data``, or None if it is not a current, intact snapshot;
    ``compact``: only what decisions need (``fold.compacted`` of it), read without
    building the rest."""
    if data is None:
        return None
    raw = memoryview(data).cast("B")
    head = len(_MAGIC) + len(_FINGERPRINT)
    if raw[: len(_MAGIC)] != _MAGIC or raw[len(_MAGIC) : head] != _FINGERPRINT:
        return None
    try:
        with collector_paused():
            stream = _Decompressing(raw[head:])
            unpickler = _StateUnpickler(stream)
            state = unpickler.load()
            if not isinstance(state, RunState):
                return None
            if compact:
                return state if stream.drained() else None
            rest = unpickler.load()
            if not stream.complete() or not isinstance(rest, tuple) or len(rest) != len(_REST):
                return None  # cut short or followed by more: not the bytes encode wrote
            for name, value in zip(_REST, rest, strict=True):
                setattr(state, name, value)
    except Exception:  # damaged bytes of any kind: the log is the truth, fold it
        return None
    return state if isinstance(state, RunState) else None
