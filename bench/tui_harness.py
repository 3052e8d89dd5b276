"""Driving lm-explorer's Textual app headless (``App.run_test``) for the TUI measures.

:class:`FrameClock` stamps every completed screen update. Headless Textual computes each update
(layout, every dirty widget's render) and then skips the terminal write; the clock also turns
the update into the terminal's escape sequences, as a real driver does before writing, so each
stamp marks a frame ready for the terminal.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable
from typing import Any

FINAL_STATUSES = ("finished", "stopped", "diverged", "failed")
APP_SIZE = (120, 36)


def tui_available() -> bool:
    """Whether the Textual app (``tui.app``) is importable."""
    try:
        return importlib.util.find_spec("tui.app") is not None
    except ModuleNotFoundError:
        return False


class FrameClock:
    """Completion times of the app's screen updates, each with what ``probe()`` said then (default: the focused widget)."""

    def __init__(self, app: Any, probe: Callable[[], Any] | None = None) -> None:
        self.frames: list[tuple[float, Any]] = []
        display = app._display
        look = probe or (lambda: app.focused)

        def stamped(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is None:
                return
            if hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)
            self.frames.append((time.perf_counter(), look()))

        app._display = stamped

    async def first_after(self, start: float, shows: Callable[[Any], bool], timeout: float = 10.0) -> float:
        """The time of the first frame after ``start`` in which ``shows(what the probe said)`` holds."""
        deadline, checked = time.perf_counter() + timeout, 0
        while time.perf_counter() < deadline:
            for stamp, focused in self.frames[checked:]:
                if stamp > start and shows(focused):
                    return stamp
            checked = len(self.frames)
            await asyncio.sleep(0.002)
        raise TimeoutError(f"no frame showed the key's effect within {timeout:g} s")


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 600.0) -> None:
    """Let the app run until ``condition()`` holds; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
