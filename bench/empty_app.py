"""The start-up measure's baseline: a Textual app showing one line, ``python -m bench.empty_app``.

Its first frame costs Python and Textual alone, nothing of lm-explorer.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static


class EmptyApp(App):
    def compose(self) -> ComposeResult:
        yield Static("lm-explorer")


if __name__ == "__main__":
    EmptyApp().run()
