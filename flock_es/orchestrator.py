"""Flock-compatible import path: ``from flock_es.orchestrator import Flock``."""

from flock_es.runtime.flock import Flock

__all__ = ["Flock"]
