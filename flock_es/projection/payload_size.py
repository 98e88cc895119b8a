"""How much of memory the payloads a run holds take: the characters of their JSON.

The runtime keeps a bounded number of artifact views and built objects
(``PRUNE_AT`` views, ``object_cache.OBJECT_CACHE`` objects) and reads the others from the
log. A count bounds memory only while payloads are small: a document pipeline
of 300 artifacts of 1 MB each held every one of them (650 MB at its peak), and
4,096 would have held 4 GB. So a compact state also lets go of the views that
are durable and not pinned once their payloads pass ``HELD_CHARS`` characters,
and the kernel's object cache lets go of its oldest large objects past as many.

What a payload weighs is the length of its event's JSON body, which the writer
makes anyway and a reader reads anyway (``Event.size``): nothing is counted on
the event loop's path. An artifact applied before its commit weighs 0 until
the commit (``Kernel.committed``) tells its size; a view read from the log
weighs its body's length at once (``fold``).

Example::

    state.held_chars    # the characters of the payloads its views hold (an estimate)
    state.prune_chars   # the next prune once they pass this
"""

from __future__ import annotations

__all__ = ["HEAVY_CHARS", "HELD_CHARS"]

HELD_CHARS = 16_000_000
"""Characters of payload a compact state's views (or the object cache's large
objects) hold before they let go of some: some 16-64 MB of memory."""

HEAVY_CHARS = 4_096
"""An object whose payload is at least this large counts against ``HELD_CHARS`` in
the object cache (smaller ones are bounded by the cache's count alone)."""
