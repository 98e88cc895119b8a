"""Flock-compatible import path: ``from flock_es.registry import flock_tool, flock_type``."""

from flock_es.domain.registry import flock_tool, flock_type

__all__ = ["flock_tool", "flock_type"]
