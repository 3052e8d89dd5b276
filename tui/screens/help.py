"""The help screen: every key of the app, grouped by where it works."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

Section = tuple[str, list[tuple[str, str]]]


def keys_table(sections: list[Section]) -> Table:
    """One table: a heading row per section, then key → what it does."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("action")
    for index, (title, rows) in enumerate(sections):
        if index:
            table.add_row("", "")
        table.add_row(f"[b underline]{title}[/]", "")
        for key, description in rows:
            table.add_row(key, description)
    return table


class HelpScreen(ModalScreen[None]):
    """Lists the keys; up/down, page up/down, home/end scroll; escape, F1 or q closes it."""

    AUTO_FOCUS = "#help-scroll"  # focused, so the scrolling keys reach it

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss", "Close help"),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 84; max-width: 95%; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, sections: list[Section]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-scroll") as scroll:
            scroll.border_title = "Keys · ↑↓ PgUp PgDn scroll · escape closes"
            yield Static(keys_table(self.sections))
