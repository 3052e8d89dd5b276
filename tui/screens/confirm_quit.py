"""Asks before quitting while runs train: they will be stopped and their checkpoints saved first."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmQuit(ModalScreen[bool]):
    """``y`` stops the runs and quits, ``n`` or escape goes back."""

    BINDINGS = [
        Binding("y", "answer(True)", "Stop runs and quit"),
        Binding("n,escape", "answer(False)", "Keep training"),
    ]

    DEFAULT_CSS = """
    ConfirmQuit { align: center middle; }
    ConfirmQuit > Vertical {
        width: 60; max-width: 95%; height: auto; border: round $warning; background: $surface; padding: 1 2;
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
            yield Static(f"{runs}{queued}. Quit anyway? Training runs stop after their current batch and save "
                         "a checkpoint you can resume; queued runs are dropped.")
            with Horizontal():
                yield Button("Stop and quit (y)", id="yes", variant="warning", compact=True)
                yield Button("Keep training (n)", id="no", compact=True)

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
