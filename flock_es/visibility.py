"""Flock-compatible import path: ``from flock_es.visibility import PrivateVisibility``."""

from flock_es.domain.visibility import (
    AfterVisibility,
    LabelledVisibility,
    PrivateVisibility,
    PublicVisibility,
    TenantVisibility,
    Visibility,
)

__all__ = [
    "AfterVisibility",
    "LabelledVisibility",
    "PrivateVisibility",
    "PublicVisibility",
    "TenantVisibility",
    "Visibility",
]
