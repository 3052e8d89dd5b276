"""Tell the app when the process that serves it to a browser has gone.

Under ``lm-explorer serve`` the app's terminal is a pair of pipes to the web server. If the server dies
(SIGKILL, a crash), Textual's input thread reads end-of-file and stops, and nothing ends the app: it would
run on with no client. :func:`watch_input_hangup` polls the input pipe for a hang-up (``POLLHUP``, which
the kernel reports once no writer is left, without reading anything the input thread should get) and then
calls back once, from its own daemon thread.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable

POLL_MS = 1000


def watch_input_hangup(fd: int, on_hangup: Callable[[], None], stop: threading.Event) -> threading.Thread:
    """Start a daemon thread that calls ``on_hangup()`` once ``fd`` has no writer left, unless ``stop`` is set first."""

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # no events asked for: only POLLHUP, POLLERR and POLLNVAL come back
        while not stop.is_set():
            if poller.poll(POLL_MS):
                on_hangup()
                return

    thread = threading.Thread(target=watch, name="client-gone", daemon=True)
    thread.start()
    return thread
