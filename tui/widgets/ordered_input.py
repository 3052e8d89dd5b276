"""An ``Input`` that handles every key in the order the keys arrived.

Textual's ``Input`` inserts printable characters in its own handler, but its editing keys
(backspace, end, left…) are bindings, which run only once the key has bubbled up to the app.
When several keys arrive in one write (fast typing, a paste of keys, a burst over SSH), the
characters are inserted before the editing keys that preceded them: End, Backspace ×6, ``24``
left an empty field. Here the input runs its own bindings in its own handler, so a burst is
applied in order.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class OrderedInput(Input):
    """``Input`` whose own key bindings run when the key reaches it, not after bubbling to the app."""

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return  # Input._on_key inserts it, next in the method resolution order
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()
                return
