"""Screens pushed over the monitor: help, a drill-down payload, go to seq."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static


def key_label(key: str) -> str:
    names = {
        "question_mark": "?",
        "slash": "/",
        "left_square_bracket": "[",
        "right_square_bracket": "]",
        "left_curly_bracket": "{",
        "right_curly_bracket": "}",
        "escape": "esc",
        "less_than_sign": "<",
        "greater_than_sign": ">",
    }
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


class HelpScreen(ModalScreen[None]):
    """Every key binding of the monitor, from its ``BINDINGS``."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, bindings: list[BindingType]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for b in self.bindings:
            if isinstance(b, Binding):
                table.add_row(key_label(b.key_display or b.key), b.description)
        with Vertical(id="help-box"):
            yield Static("[b]flock-es tui[/b] — keys", id="help-title")
            yield Static(table)
            yield Static(
                "Filter syntax: agent:NAME type:TYPE kind:KIND or free text.  "
                "ctrl+p opens the command palette.",
                id="help-foot",
            )


class DetailScreen(ModalScreen[None]):
    """A drill-down: one object (artifact payload, task, agent, event) pretty-printed."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Back")]

    def __init__(self, title: str, data: Any) -> None:
        super().__init__()
        self.title_text = title
        self.data = data

    def compose(self) -> ComposeResult:
        text = json.dumps(self.data, indent=2, ensure_ascii=False, default=str)
        with Vertical(id="detail-box"):
            yield Static(f"[b]{self.title_text}[/b]  (esc: back)", id="detail-title")
            with VerticalScroll(id="detail-scroll"):
                yield Static(Syntax(text, "json", word_wrap=True, theme="ansi_dark"))


class GotoScreen(ModalScreen[int | None]):
    """Ask for a seq to travel to."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    CANCEL = -1

    def action_cancel(self) -> None:
        self.dismiss(self.CANCEL)

    def compose(self) -> ComposeResult:
        with Vertical(id="goto-box"):
            yield Static("Go to seq (empty: back to live)")
            yield Input(placeholder="seq", id="goto-input", type="integer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(int(value) if value else None)
