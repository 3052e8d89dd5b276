"""The app's eyes on the checkpoints folder: every run in it, followed as it trains.

A :class:`Follower` runs in a thread worker and, every ``FOLLOW_S`` seconds, asks the engine's
controller how the busy runs stand (:class:`engine.runs.view.RunView`: status, trainer, device,
progress; busy: training, queued, or followed) and reads what the *followed* runs appended to their
``metrics.jsonl`` since the last look. Every run folder is looked at every ``SETTLED_S`` seconds, and
at once when the checkpoints folder itself changed (a run folder made, removed or renamed) or the app
asked (:meth:`Follower.look_now`): so a settled run's change that no look of this app caused (a
resume from another shell) shows within ``SETTLED_S``, while a poll of 1,000 settled runs is one
``lstat`` four times a second. It posts one :class:`Observed` message per look that found something new. The
runs it follows are the ones the app shows; a run newly followed is read from its first line. Of
a run it does not follow it reads the new lines only when the run's view changed, and the app
keeps only what the runs list needs of them (throughput, best validation loss).
Whoever trains a run (this app's sweep runner, a headless ``lm-explorer train`` in another shell,
a trainer left by an earlier session) makes no difference: the folder is the only channel.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

from engine.errors import UserError
from engine.jobs.controller import Controller
from engine.runs import metrics_lines, protocol
from engine.runs.view import RunView
from engine.safe_io import open_regular

FOLLOW_S = 0.25
SETTLED_S = 2.0
"""How often every run folder is looked at, settled ones included: the longest a settled run's change waits to show."""
READ_LIMIT = 8 << 20


@dataclass
class Update:
    """What one look found about one run: its view, and the metric lines new since the last look."""

    view: RunView
    lines: list[dict[str, Any]] = field(default_factory=list)
    restart: bool = False  # the lines are the run's whole history: replace what was shown
    definitions: dict[str, str] = field(default_factory=dict)
    followed: bool = True  # False: the lines of a run not followed, for the runs list only


class Observed(Message):
    """The runs that changed since the last look (new, new status or progress, new metric lines), and those gone."""

    def __init__(self, updates: list[Update], gone: list[str]) -> None:
        super().__init__()
        self.updates = updates
        self.gone = gone


@dataclass
class _Tail:
    offset: int = 0
    inode: int = -1


def read_new_lines(path: Path, tail: _Tail) -> tuple[list[dict[str, Any]], bool]:
    """The metrics lines (:mod:`engine.runs.metrics_lines`) completed in ``path`` since ``tail``; True when the file
    was replaced (read from its start)."""
    try:
        fd = open_regular(path, protocol.protocol_file(path))
    except (OSError, UserError):
        return [], False
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        restart = info.st_ino != tail.inode or info.st_size < tail.offset
        if restart:
            tail.offset, tail.inode = 0, info.st_ino
        file.seek(tail.offset)
        data = file.read(READ_LIMIT)
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next look
    if not end and len(data) == READ_LIMIT:  # no end in sight: a line far over the limit, read past and skipped
        end = len(data)
    tail.offset += end
    return metrics_lines.parse_lines(data[:end]), restart


class Follower:
    """Looks at the folder every ``FOLLOW_S`` seconds in :meth:`run` (a thread) until :meth:`close`."""

    def __init__(self, controller: Controller, post: Callable[[Message], Any]) -> None:
        self.controller = controller
        self.post = post
        self._followed: set[str] = set()
        self._tails: dict[str, _Tail] = {}  # the followed runs'
        self._summary_tails: dict[str, _Tail] = {}  # the others'
        self._last: dict[str, tuple[object, ...]] = {}  # run → what its last Update showed of its status
        self._busy: set[str] = set()  # the runs training or queued at the last look at them
        self._folder: tuple[int, int, int] | None = None  # the checkpoints folder's stamp at the last look at every run
        self._everything_at = -SETTLED_S  # when that look began (time.monotonic)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._poke = threading.Event()

    def follow(self, name: str) -> None:
        """Read ``name``'s metric lines from the start at the next look, then as they come."""
        with self._lock:
            self._followed.add(name)
            self._tails[name] = _Tail()
        self._poke.set()

    def unfollow(self, name: str) -> None:
        with self._lock:
            self._followed.discard(name)
            self._tails.pop(name, None)

    def look_now(self) -> None:
        self._poke.set()

    def close(self) -> None:
        self._closed.set()
        self._poke.set()

    def run(self) -> None:
        everything = True
        while not self._closed.is_set():
            self.look(everything)
            everything = self._poke.wait(FOLLOW_S)
            self._poke.clear()

    def look(self, everything: bool = True) -> None:
        """One look at the busy runs, or at every run folder when ``everything``, when ``SETTLED_S`` s have passed
        since the last such look, or when the checkpoints folder changed since; posts :class:`Observed` when anything
        changed (runs gone only after a look at every folder)."""
        self.controller.reap()
        reader = self.controller.runs
        folder, now = reader.folder_stamp(), time.monotonic()
        everything = everything or folder != self._folder or now - self._everything_at >= SETTLED_S
        if everything:
            self._folder, self._everything_at = folder, now  # taken before the scan: a change during it shows next look
        with self._lock:
            followed = set(self._followed)
        views = {view.name: view for view in reader.views(None if everything else self._busy | followed)}
        updates = []
        for name, view in views.items():
            if view.alive or view.status in protocol.ALIVE:
                self._busy.add(name)
            else:
                self._busy.discard(name)
            with self._lock:
                tail = self._tails.get(name) if name in self._followed else None
            path = self.controller.checkpoints / name / protocol.METRICS_FILE
            lines, restart = read_new_lines(path, tail) if tail else ([], False)
            key = (view.status, view.step, view.device, view.pid, view.record.updated if view.record else None, view.message)
            if not lines and not restart and self._last.get(name) == key:
                continue
            self._last[name] = key
            if tail is None:
                lines, restart = read_new_lines(path, self._summary_tails.setdefault(name, _Tail()))
            updates.append(Update(view, lines, restart, self._definitions(view), followed=tail is not None))
        gone = [name for name in self._last if name not in views] if everything else []
        for name in gone:
            del self._last[name]
            self._summary_tails.pop(name, None)
            self._busy.discard(name)
        if updates or gone:
            self.post(Observed(updates, gone))

    @staticmethod
    def _definitions(view: RunView) -> dict[str, str]:
        if view.config is None:
            return {}
        from engine.objective.metrics import definitions_for

        return definitions_for(view.config.model.head)
