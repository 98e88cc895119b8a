"""How many examples a hypothesis property tries: all in the full set, a quarter in the
quick one.

The properties (of the fold, the gates, snapshots, the offline model's JSON) are
among the quick set's longest tests after the subprocess ones (over 20 s of its
time on a slow 2-core host). ``pytest`` alone (the quick set) tries a quarter of
each property's examples, at least 25; ``--run-slow`` and any ``-m`` expression
(``.ci/run`` passes ``--run-slow``) try them all. ``conftest.pytest_configure``
sets ``FULL`` before any test module is imported, so a module's
``@settings(max_examples=examples(200))`` reads it.
"""

from __future__ import annotations

__all__ = ["FULL", "examples"]

FULL = False
"""Whether this session runs the full set (set by ``conftest.pytest_configure``)."""


def examples(full: int) -> int:
    """The examples a property tries in this session: ``full`` in the full set.

    >>> examples(200) in (200, 50)
    True
    """
    return full if FULL else max(25, full // 4)
