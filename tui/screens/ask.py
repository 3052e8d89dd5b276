"""Small modal questions the runs list asks: a line of text (more epochs, a new name) and a yes/no before deleting."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from tui.widgets.ordered_input import OrderedInput

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 70; max-width: 95%; height: auto; border: round {border}; background: $surface; padding: 1 2; }}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} .problem {{ color: $error; height: auto; }}
{name} Horizontal {{ height: auto; margin-top: 1; align-horizontal: center; }}
{name} Button {{ margin: 0 1; }}
"""


class AskText(ModalScreen["str | None"]):
    """One line of text: enter answers it (when ``check`` finds no problem, else the problem shows), escape goes back."""

    AUTO_FOCUS = "#answer"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Go back")]
    DEFAULT_CSS = MODAL_CSS.format(name="AskText", border="$accent")

    def __init__(self, title: str, prompt: str, value: str, check: Callable[[str], str | None], integer: bool = False) -> None:
        super().__init__()
        self.title_text, self.prompt, self.initial, self.check = title, prompt, value, check
        self.integer = integer

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="title")
            yield Static(self.prompt, id="prompt")
            yield OrderedInput(self.initial, id="answer", type="integer" if self.integer else "text", select_on_focus=True)
            yield Static("", id="problem", classes="problem")
            yield Static("enter: go on · escape: back", classes="hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        problem = self.check(event.value.strip())
        if problem:
            self.query_one("#problem", Static).update(problem)
            return
        self.dismiss(event.value.strip())


class ConfirmDelete(ModalScreen[bool]):
    """``y`` (or the Delete button) deletes; ``n``, escape or enter on the default button keeps the run."""

    AUTO_FOCUS = "#keep"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Delete it"),
        Binding("n,escape", "answer(False)", "Keep it"),
    ]
    DEFAULT_CSS = MODAL_CSS.format(name="ConfirmDelete", border="$error")

    def __init__(self, name: str, what: str) -> None:
        super().__init__()
        self.run_name, self.what = name, what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Delete run {self.run_name}?", classes="title")
            yield Static(f"Its folder goes, with its checkpoint and metrics ({self.what}). This cannot be undone.")
            with Horizontal():
                yield Button("Keep it (n)", id="keep", variant="primary", compact=True)
                yield Button("Delete (y)", id="delete", variant="error", compact=True)

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "delete")
