"""A document-sized payload in the TUI: the screens show its start and say where the rest is.

A 2 MB artifact rendered whole held ``flock-es tui`` for 7 seconds at its selection,
8 at each key after, 12 at the detail of the task that read it and 10 at a resize
(the side pane and the detail screens laid out every wrapped line). What is shown
is now cut (``tui/bounded.py``), each cut saying how much it left out, and the
detail says which command prints the whole; the detail's data stays whole.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from rich.console import Console, Group
from textual.widgets import Static

from flock_es import Flock, flock_type
from flock_es.domain.printable import printable
from flock_es.tui import MonitorApp
from flock_es.tui.bounded import DETAIL, PANE, Bounds, bounded
from flock_es.tui.rows import preview
from flock_es.tui.screens import DetailScreen
from tests.property_budget import examples
from tests.test_tui_app import keys_of, settle

SIZE = (120, 40)
CHARS = 2_000_000


@flock_type
class BigDoc(BaseModel):
    title: str
    text: str


@flock_type
class BigDocSummary(BaseModel):
    title: str
    words: int


def _text() -> str:
    return ("lorem ipsum dolor sit amet " * (CHARS // 27 + 1))[:CHARS]


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real run: one 2 MB document, read by a model agent (offline) whose prompt holds it."""
    db = tmp_path_factory.mktemp("big") / "big.db"

    async def run() -> str:
        flock = Flock(db=db, model="offline")
        flock.agent("summariser").description("summarise").consumes(BigDoc).publishes(BigDocSummary)
        await flock.start()
        await flock.publish(BigDoc(title="big", text=_text()))
        await flock.run_until_idle()
        await flock.close()
        return flock.run_id

    return db, asyncio.run(run())


def _rendered(screen: DetailScreen) -> str:
    console = Console(width=116, record=True, file=io.StringIO())
    console.print(Group(*screen.detail.body))
    return console.export_text()


async def test_pane_and_detail_show_the_start_of_a_2mb_payload(big_db: tuple[Path, str]) -> None:
    db, run_id = big_db
    app = MonitorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, 60)
        await pilot.press("4")
        await pilot.pause()
        table = app.vlist("artifacts")
        assert app.server is not None
        keys = keys_of(table)
        doc = next(k for k in keys if (a := app.server.artifact(k)[0]) and a.type == "BigDoc")
        await pilot.press("home", *["down"] * keys.index(doc))
        await pilot.pause()
        assert table.selected_key == doc
        code = app.query_one("#payload", Static).content.code
        assert len(code) < 3 * PANE.chars
        assert "lorem ipsum" in code
        assert f"[+{CHARS - PANE.chars:,} characters]" in code
        assert "cut here: enter shows more" in code

        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert len(app.screen.data["text"]) == CHARS  # the data stays whole
        shown = _rendered(app.screen)
        assert len(shown) < 3 * DETAIL.chars
        assert f"[+{CHARS - DETAIL.chars:,}" in shown
        assert f"flock-es show {run_id} --payloads --json" in shown.replace("\n", " ")
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)


async def test_the_task_detail_cuts_its_input_and_its_prompt(big_db: tuple[Path, str]) -> None:
    db, run_id = big_db
    app = MonitorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, 60)
        await pilot.press("2", "enter")  # the agent, then its one task
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.title_text.startswith("task ")
        shown = _rendered(app.screen)
        # The input's payload and the prompt (which holds it again), each cut.
        assert shown.count(f"{CHARS - DETAIL.chars:,} characters]") >= 1
        assert len(shown) < 12 * DETAIL.chars
        flat = " ".join(shown.split())
        assert f"flock-es show {run_id} --payloads --json" in flat
        assert f"flock-es export {run_id}" in flat


def test_preview_reads_the_start_of_a_large_payload() -> None:
    payload = {"title": "big", "text": "x" * CHARS, "tags": list(range(100_000))}
    out = preview(payload, 400)
    assert len(out) == 400
    assert out.startswith('{"title": "big", "text": "xxx')


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=examples(100), deadline=None)
@given(JSON)
def test_a_value_within_bounds_is_shown_unchanged(value: Any) -> None:
    shown, cut = bounded(value, Bounds(chars=30, items=6))
    assert cut == 0
    assert shown is value


@settings(max_examples=examples(100), deadline=None)
@given(JSON, st.integers(1, 10), st.integers(1, 5))
def test_a_cut_value_says_what_it_left_out(value: Any, chars: int, items: int) -> None:
    shown, cut = bounded(value, Bounds(chars=chars, items=items))
    json.dumps(shown)  # still JSON
    if cut == 0:
        assert shown is value
    else:
        assert "[+" in json.dumps(shown, ensure_ascii=False)


@settings(max_examples=examples(100), deadline=None)
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=6))
def test_the_preview_of_a_small_payload_is_its_whole_dump(payload: dict[str, Any]) -> None:
    text = json.dumps(payload, ensure_ascii=False, separators=(", ", ": "), default=str)
    text = printable(" ".join(text.split()))  # control characters as escapes
    expected = text if len(text) <= 400 else text[:399] + "…"
    assert preview(payload, 400) == expected


def test_nested_lists_do_not_multiply_what_is_shown() -> None:
    """100 pages of 100 lines of 2,000 characters (20 MB) are within each bound on its
    own (strings, lists); the total bound keeps what is shown to a screenful or so."""
    pages = {"pages": [["x" * 2_000] * 100] * 100}
    for bounds in (PANE, DETAIL):
        shown, cut = bounded(pages, bounds)
        assert cut and len(json.dumps(shown)) < bounds.total + 2_000
