"""The bytes of a snapshot: a header, then compressed pickles of the state's own classes.

One stored snapshot is one link of a chain (``flock_es.projection.snapshot``)::

    FESNAP2\\n | fingerprint (16 bytes) | seq, events, prev_seq, prev_events, core_len, whole
    | core:    one zlib stream, one pickle: the compact state at ``seq``
    | segment: one zlib stream, pickles ("field", [(key, view), ...]) ..., then ("", order)

The header names the link the segment follows (``prev_seq``, with the number of
events folded up to it; 0, 0: the empty state), so a chain is checked from the
headers alone. Only the state's own classes are ever built (``StateUnpickler``),
and only bytes of this layout, this flock-es version and this fold's code
(``fingerprint``) are read at all.

Example::

    out = Compressing()
    dump(out, state)
    link = Link(state.last_seq, state.events, 0, 0, len(out.getvalue()), whole=False)
    assert parse_link(pack_link(link)) == link
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import operator
import pickle
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flock_es._version import __version__
from flock_es.domain.events import TaskStatus
from flock_es.projection import state as state_module

__all__ = [
    "HEADER_BYTES",
    "Compressing",
    "Decompressing",
    "Link",
    "StateUnpickler",
    "collector_paused",
    "dump",
    "fingerprint",
    "pack_link",
    "parse_link",
]

_MAGIC = b"FESNAP2\n"
_HEAD = struct.Struct("<6Q")
STATE_CLASSES: dict[str, type] = {
    name: obj
    for name in state_module.__all__
    if isinstance(obj := getattr(state_module, name), type) and dataclasses.is_dataclass(obj)
}

# The fold's own code: a snapshot written by another fold may differ from this one's.
_FOLD_MODULES = (
    "fold.py",
    "fold_calls.py",
    "fold_compact.py",
    "fold_gates.py",
    "fold_components.py",
    "state.py",
    "snapshot.py",
    "snapshot_codec.py",
    "snapshot_links.py",
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
    for name in sorted(STATE_CLASSES):
        h.update(name.encode())
        for f in dataclasses.fields(STATE_CLASSES[name]):
            h.update(f"{f.name}:{f.type}".encode())
    h.update(",".join(s.value for s in TaskStatus).encode())
    return h.digest()


_FINGERPRINT = fingerprint()
HEADER_BYTES = len(_MAGIC) + len(_FINGERPRINT) + _HEAD.size
"""The bytes of a snapshot's header: enough to check a chain without reading the rest."""


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """A snapshot's header: where it is, what it follows, where its parts lie.

    ``whole``: the segment lists every view of a full state, in its order (``encode``);
    else only those the compact fold let go of since ``prev_seq`` (a checkpoint job's).
    """

    seq: int
    events: int
    prev_seq: int
    prev_events: int
    core_len: int
    whole: bool


def pack_link(link: Link) -> bytes:
    """The header bytes of ``link``."""
    fields = (link.seq, link.events, link.prev_seq, link.prev_events, link.core_len, link.whole)
    return _MAGIC + _FINGERPRINT + _HEAD.pack(*(int(v) for v in fields))


def parse_link(data: bytes | memoryview, head_only: bool = False) -> Link | None:
    """The header of ``data``, or None if it is not a snapshot this fold wrote;
    ``head_only``: ``data`` is only the first ``HEADER_BYTES`` of one."""
    raw = memoryview(data).cast("B")
    if len(raw) < HEADER_BYTES or raw[: len(_MAGIC)] != _MAGIC:
        return None
    if raw[len(_MAGIC) : len(_MAGIC) + len(_FINGERPRINT)] != _FINGERPRINT:
        return None
    seq, events, prev_seq, prev_events, core_len, whole = _HEAD.unpack_from(
        raw, len(_MAGIC) + len(_FINGERPRINT)
    )
    if whole > 1 or (not head_only and HEADER_BYTES + core_len > len(raw)):
        return None
    return Link(seq, events, prev_seq, prev_events, core_len, bool(whole))


def _reducer(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]]:
    get = operator.attrgetter(*(f.name for f in dataclasses.fields(cls)))
    return lambda obj: (cls, get(obj))


# Each view pickles as its class and its field values, rebuilt by calling the class:
# the dataclasses' own (slots) pickling goes through Python per object, 3x slower.
_REDUCERS = {cls: _reducer(cls) for cls in STATE_CLASSES.values()}


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


class Compressing:
    """A file picklers write to, compressed as it goes: only compressed bytes are held."""

    def __init__(self) -> None:
        self.z = zlib.compressobj(1)
        self.chunks: list[bytes] = []
        self.size = 0
        self.fed = 0  # bytes written (compressed output comes in blocks of ~400 kB of them)

    def write(self, data: bytes | memoryview) -> int:
        self.fed += len(data)
        out = self.z.compress(data)
        if out:
            self.chunks.append(out)
            self.size += len(out)
        return len(data)

    def getvalue(self) -> bytes:
        """The whole stream, ended (write nothing more)."""
        self.chunks.append(self.z.flush())
        return b"".join(self.chunks)


def dump(out: Compressing, obj: object) -> None:
    """Pickle ``obj`` into ``out`` (its own memo: views shared within ``obj`` once)."""
    pickler = pickle.Pickler(out, protocol=5)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(obj)


class StateUnpickler(pickle.Unpickler):
    """Builds only the state's own classes: a snapshot can never run other code."""

    def find_class(self, module: str, name: str) -> Any:
        if module == state_module.__name__ and name in STATE_CLASSES:
            return STATE_CLASSES[name]
        if module == TaskStatus.__module__ and name == TaskStatus.__name__:
            return TaskStatus
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a snapshot")


class Decompressing:
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
        """Whether the compressed data ended where the pickles did, checksum and all."""
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
