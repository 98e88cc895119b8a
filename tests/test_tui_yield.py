"""The fold yields to keys, but keys typed or held steadily never stop it for good."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from flock_es.tui import loading


def test_steady_keys_cannot_hold_the_fold_back_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "MAX_YIELD", 0.05)
    # A key pressed "just now", forever: _busy_until far ahead, as steady typing keeps it.
    app = SimpleNamespace(_busy_until=time.monotonic() + 3600)
    loading.LoadingMixin._yield_to_ui(app)  # type: ignore[arg-type]
    assert app._busy_until > time.monotonic()  # it returned while the key was still "busy"
