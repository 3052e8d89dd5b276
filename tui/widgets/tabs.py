"""The app's tabs: a ``TabbedContent`` that follows focus only while the focus is still there.

``TabbedContent`` switches to a pane when a widget inside it is focused, through a message that
arrives a moment later. With two tab keys in one write (``F4 F3``), the first pane's message could
arrive after the second switch and pull the tabs back to the first pane above the second pane's
focus. Here a late message from a pane that no longer holds the focus is ignored.
"""

from __future__ import annotations

from textual.widgets import TabbedContent, TabPane


class FocusTabs(TabbedContent):
    """Tabs that switch to a pane on focus only if the focused widget is still inside that pane."""

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()
        event.prevent_default()  # TabbedContent's own handler would switch unconditionally
        focused = self.screen.focused
        if event.tab_pane.id is not None and focused is not None and event.tab_pane in focused.ancestors_with_self:
            self.active = event.tab_pane.id
