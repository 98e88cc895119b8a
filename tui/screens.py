"""Screens pushed over the monitor: help, an object's detail, go to seq, confirm."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from .detail import Detail


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
    """One object (task, artifact, agent, event) and the links to open next (lineage)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Back")]

    class Open(Message):
        """A link was chosen: open object ``key`` of ``kind`` on top."""

        def __init__(self, kind: str, key: str) -> None:
            super().__init__()
            self.kind = kind
            self.key = key

    def __init__(self, detail: Detail) -> None:
        super().__init__()
        self.detail = detail
        self.title_text = detail.title
        self.data = detail.data

    def compose(self) -> ComposeResult:
        d = self.detail
        with Vertical(id="detail-box"):
            yield Static(f"[b]{escape(d.title)}[/b]  (esc: back)", id="detail-title")
            with VerticalScroll(id="detail-scroll"):
                yield Static(Group(*d.body))
            if d.links:
                yield Static(f"{len(d.links)} linked (enter opens):", id="detail-links-title")
                yield OptionList(*(Option(escape(k.label)) for k in d.links), id="detail-links")

    def on_mount(self) -> None:
        if self.detail.links:
            self.query_one("#detail-links", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        link = self.detail.links[event.option_index]
        self.app.post_message(self.Open(link.kind, link.key))


class ConfirmScreen(ModalScreen[bool]):
    """Ask before an action that starts a process (resume, replay, fork, export)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="goto-box"):
            yield Static(self.question)
            yield Static("[b]y[/b] yes · [b]n[/b] no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


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
