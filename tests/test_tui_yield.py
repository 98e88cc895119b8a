"""The loader yields to keys, but steady keys never stop it for good, and it never delays `q`."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from flock_es.tui import loading
from tests.tui_logs import write_news_log


def test_steady_keys_cannot_hold_the_fold_back_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "MAX_YIELD", 0.05)
    # A key pressed "just now", forever: _busy_until far ahead, as steady typing keeps it.
    app = SimpleNamespace(_busy_until=time.monotonic() + 3600)
    loading.LoadingMixin._yield_to_ui(app)
    assert app._busy_until > time.monotonic()  # it returned while the key was still "busy"


def test_quitting_does_not_wait_out_the_loader_s_sleep(tmp_path: Path) -> None:
    # The loader thread waits for the fold process's notes; once the app closed the
    # server to quit, that wait must return at once (it slept a whole second, so `q`
    # took a second). A wait of an hour would hit the test's timeout.
    from flock_es.tui.remote import RemoteServer

    db = tmp_path / "news.db"
    write_news_log(db)
    server = RemoteServer(str(db), None)
    server.close()
    assert server.wait(3600) is False
