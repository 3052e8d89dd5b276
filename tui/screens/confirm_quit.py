"""Asks before quitting while runs train: leave them training (the default), or stop them with a checkpoint."""

from __future__ import annotations

from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

QuitChoice = Literal["leave", "stop"]
BUTTON_CHOICES: dict[str, QuitChoice] = {"leave": "leave", "stop": "stop"}


class ConfirmQuit(ModalScreen["QuitChoice | None"]):
    """``l`` or enter leaves the runs training and quits, ``y``/``s`` stops them and quits, ``n`` or escape goes back."""

    AUTO_FOCUS = "#leave"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "answer('leave')", "Leave them training and quit"),
        Binding("y,s", "answer('stop')", "Stop them and quit"),
        Binding("n,escape", "answer(None)", "Go back"),
    ]

    DEFAULT_CSS = """
    ConfirmQuit { align: center middle; }
    ConfirmQuit > Vertical {
        width: 66; max-width: 95%; height: auto; border: round $warning; background: $surface; padding: 1 2;
    }
    ConfirmQuit Horizontal { height: auto; margin-top: 1; align-horizontal: center; }
    ConfirmQuit Button { margin: 0 1; }
    """

    def __init__(self, training: int, queued: int) -> None:
        super().__init__()
        self.training = training
        self.queued = queued

    def compose(self) -> ComposeResult:
        runs = f"{self.training} run{'s' if self.training != 1 else ''} training"
        queued = f" and {self.queued} queued" if self.queued else ""
        with Vertical():
            yield Static(
                f"{runs}{queued}. They train on without the app, and the next lm-explorer shows them; "
                "or stop them now: each saves a checkpoint you can resume, queued runs do not start."
            )
            with Horizontal():
                yield Button("Leave training (l)", id="leave", variant="primary", compact=True)
                yield Button("Stop them (s)", id="stop", variant="warning", compact=True)
                yield Button("Back (n)", id="back", compact=True)

    def action_answer(self, answer: QuitChoice | None) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(BUTTON_CHOICES.get(event.button.id or ""))
