"""The screen's fold holds no payload or answer; what it shows of them is read back
from the log, the same as when it held them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from flock_es.log.reader import LogReader
from flock_es.projection.fold import fold
from flock_es.projection.state import RunState
from flock_es.tui import rows
from flock_es.tui.detail import Detail
from flock_es.tui.monitor import Monitor
from flock_es.tui.on_disk import ON_DISK, payload_of
from flock_es.tui.server import ViewRequest, ViewServer
from flock_es.tui.sources import ArtifactSource
from tests.tui_logs import NEWS_RUN, write_news_log


def _full(log: LogReader) -> RunState:
    return fold(log.events(NEWS_RUN))


def _text(detail: Detail) -> str:
    console = Console(width=200, record=True, color_system=None)
    for part in detail.body:
        console.print(part)
    return console.export_text()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ViewServer, LogReader]]:
    db = tmp_path / "news.db"
    write_news_log(db)
    log = LogReader(db)
    server = ViewServer(Monitor(log), log)
    server.m.catch_up()
    yield server, log
    log.close()


def test_rows_and_the_payload_pane_show_the_payloads_the_log_holds(
    served: tuple[ViewServer, LogReader],
) -> None:
    server, log = served
    full = _full(log)
    state = server.m.state
    assert state.artifacts and all(a.payload is ON_DISK for a in state.artifacts.values())
    shown = server.rows("artifacts", ViewRequest(), 0, 100)
    assert [key for key, _ in shown] == list(full.artifacts)
    for key, cells in shown:
        assert cells[3].plain == rows.preview(full.artifacts[key].payload, 400)
    for aid, want in full.artifacts.items():
        view, _ = server.artifact(aid)
        assert view is not None and view.payload == want.payload
        assert state.artifacts[aid].payload is ON_DISK  # the pane's copy, not the state's


def test_details_show_payloads_read_back(served: tuple[ViewServer, LogReader]) -> None:
    server, log = served
    full = _full(log)
    digest = next(a for a in full.artifacts.values() if a.type == "NewsDigest")
    detail = server.detail("artifact", digest.id)
    assert detail is not None and detail.data == digest.payload
    task = server.detail("task", "t-editor-digest-000")
    assert task is not None
    text = _text(task)  # its inputs (8 analyses) and its output, each with its payload
    assert text.count("Constitutional AI") == 8
    assert str(digest.payload["headline"])[:40] in text


@pytest.mark.parametrize("part", [1, 3, 500])
def test_a_filter_reads_payloads_a_part_at_a_time(
    served: tuple[ViewServer, LogReader], part: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, log = served
    monkeypatch.setattr(ArtifactSource, "PART", part)
    full = _full(log)
    for words in ("world takeaway", "constitutional", "agent:editor", "type:news breakthrough"):
        flt = rows.Filter.parse(words)
        want = [k for k, a in full.artifacts.items() if rows.artifact_matches(a, a.payload, flt)]
        req = ViewRequest(flt=flt)
        assert server.frame(req).lists["artifacts"] == len(want) > 0, words
        assert [k for k, _ in server.rows("artifacts", req, 0, 100)] == want, words


def test_a_payload_the_log_does_not_hold_shows_empty(served: tuple[ViewServer, LogReader]) -> None:
    server, _ = served
    view = next(iter(server.m.state.artifacts.values()))
    assert payload_of(view, server.reader)  # its own, from the log
    assert payload_of(replace(view, seq=10**9), server.reader) == {}  # no event there
