"""Flock-compatible import path: ``from flock_es.subscription import BatchSpec``."""

from flock_es.domain.subscriptions import BatchSpec, JoinSpec

__all__ = ["BatchSpec", "JoinSpec"]
