"""Asks before quitting while runs the app started train: leave them training (the default), or stop them with a
checkpoint. Runs that other processes started are named apart: they train on either way."""

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
    """``l`` or enter leaves the app's runs training and quits, ``y``/``s`` stops them and quits, ``n`` or escape goes back."""

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

    def __init__(self, training: int, queued: int, others: list[str]) -> None:
        super().__init__()
        self.training = training
        self.queued = queued
        self.others = others  # alive runs another process started: not the app's to stop

    def compose(self) -> ComposeResult:
        runs = f"{self.training} run{'s' if self.training != 1 else ''} training"
        queued = f" and {self.queued} queued" if self.queued else ""
        with Vertical():
            yield Static(
                f"{runs}{queued} started here. They train on without the app, and the next lm-explorer shows them; "
                "or stop them now: each saves a checkpoint you can resume, queued runs do not start."
                + (f"\n\n{_named(self.others)} another process started train on either way." if self.others else "")
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


SHOWN_NAMES = 3


def _named(names: list[str]) -> str:
    """``1 run (a)``, ``2 runs (a, b)``, ``5 runs (a, b, c and 2 more)``."""
    shown = ", ".join(names[:SHOWN_NAMES]) + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")
    return f"{len(names)} run{'s' if len(names) != 1 else ''} ({shown})"
