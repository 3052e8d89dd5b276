"""The read model: every run as its folder shows it to any reader, the one place that reads run folders' state.

The app, ``lm-explorer runs``, deleting and renaming, and the controller all read runs through
:class:`RunReader`; only :class:`engine.jobs.controller.Controller` changes them. A run's status is
derived from its folder (:func:`engine.runs.protocol.derive_status`): the saved record, a queued
``request.json``, the writer's lock and heartbeat, and a stop request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.config.models import RunConfig
from engine.errors import UserError
from engine.runs import protocol
from engine.runs.record import RunRecord, read_record

if TYPE_CHECKING:
    from engine.runs.record import RunRecord


@dataclass(frozen=True)
class RunView:
    """One run as the folder shows it to any reader: status (derived, :func:`engine.runs.protocol.derive_status`), config,
    saved record, and, while it trains, its trainer (pid, host, device) and progress."""

    name: str
    status: protocol.Status | None
    config: RunConfig | None = None
    record: RunRecord | None = None
    alive: bool = False
    pid: int | None = None
    host: str | None = None
    device: str | None = None
    step: int = 0
    total_steps: int = 0
    message: str | None = None
    problem: str | None = None
    created: str = ""  # when the run was queued or first saved (ISO 8601, UTC): the order runs are numbered in

    @property
    def progress(self) -> float:
        """Share of the run's batches done (0–1)."""
        if self.total_steps:
            return min(1.0, self.step / self.total_steps)
        if self.record is not None:
            return min(1.0, self.record.step / max(self.record.steps_per_epoch * self.record.config.train.epochs, 1))
        return 0.0

    @property
    def trainer(self) -> str:
        """``pid 123 on cpu`` (``… @host`` from another box) while alive, else ``–``."""
        if not self.alive:
            return "–"
        where = f"@{self.host}" if self.host not in (None, protocol.HOST) else ""
        return f"pid {self.pid}{where} on {self.device or '?'}"


SETTLED_REFRESH_S = 5.0
"""A settled run's view is re-read at least this often, whatever its files' stamps say."""

Stamp = tuple[tuple[int, int, int] | None, ...]


class RunReader:
    """Every run's state in one checkpoints folder, read from the folders (records re-read only when they change).

    A *settled* run (not alive, not queued: finished, stopped, interrupted…) changes only when a file in its
    folder does, so its view is kept while the folder's, ``run.json``'s and ``request.json``'s stamps stay the
    same, and re-read at least every ``SETTLED_REFRESH_S`` s: a poll of 1,000 settled runs costs three
    ``lstat`` each instead of reading five files and probing a lock (the app's follower looks at every run every 2 s).
    """

    def __init__(self, checkpoints: Path | str):
        self.checkpoints = Path(checkpoints)
        self._records: dict[str, tuple[tuple[int, int, int], RunRecord]] = {}
        self._settled: dict[str, tuple[Stamp, float, RunView]] = {}

    def view(self, name: str) -> RunView:
        """The run ``name`` as its folder says now."""
        stamp = _stamp(os.path.join(self.checkpoints, name))
        settled = self._settled.get(name)
        if settled is not None and settled[0] == stamp and time.monotonic() - settled[1] < SETTLED_REFRESH_S:
            return settled[2]
        view = self._read(name)
        if stamp[0] is not None and not view.alive and view.status not in protocol.ALIVE and view.status is not None:
            self._settled[name] = (stamp, time.monotonic(), view)
        else:
            self._settled.pop(name, None)
        return view

    def _read(self, name: str) -> RunView:
        """The run ``name`` read from its files."""
        folder = self.checkpoints / name
        record, problem = self._record(name)
        request = read_request(folder)
        live = protocol.liveness(folder)
        requested = request.get("status") if request and request.get("status") in protocol.STATUSES else None
        status = protocol.derive_status(
            record.status if record else None,
            requested,
            live.alive,
            protocol.owner_alive(request.get("owner") if request else None),
            protocol.stop_requested(folder),
        )
        config = record.config if record else request_config(request)
        message = (request or {}).get("message") if record is None else record.message
        beat = live.beat if live.alive else None
        created = (record.created if record else None) or (request or {}).get("created")
        return RunView(
            name,
            status,
            config,
            record,
            live.alive,
            live.holder.pid if live.alive else None,
            live.holder.host if live.alive else None,
            beat.device if beat else None,
            beat.step if beat else 0,
            beat.total_steps if beat else 0,
            message if isinstance(message, str) else None,
            problem,
            created if isinstance(created, str) else _folder_time(folder),
        )

    def views(self, names: Iterable[str] | None = None) -> list[RunView]:
        """Every run folder under the checkpoints folder (symlinks and dot-folders skipped), or only those of ``names``
        that hold a run, newest first."""
        if names is None:
            try:
                names = [
                    entry.name
                    for entry in os.scandir(self.checkpoints)
                    if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")
                ]
            except (FileNotFoundError, NotADirectoryError):
                return []
        views = [view for view in map(self.view, names) if view.status is not None or view.problem]
        return sorted(views, key=lambda view: (view.record.updated if view.record else "~", view.name), reverse=True)

    def folder_stamp(self) -> tuple[int, int, int] | None:
        """The checkpoints folder's (inode, mtime, size), None when absent: a run folder made, removed or renamed in
        it changes it (what happens inside a run's folder does not)."""
        return _file_stamp(os.fspath(self.checkpoints))

    def known(self, name: str) -> RunView:
        """The run ``name``, or the sentence saying there is none."""
        if not name or "/" in name or name in (".", "..") or not (self.checkpoints / name).is_dir():
            raise UserError(f"No run named {name!r} in {str(self.checkpoints)!r}; 'lm-explorer runs' lists them.")
        view = self.view(name)
        if view.status is None:
            raise UserError(f"{str(self.checkpoints / name)!r} holds no run; 'lm-explorer runs' lists them.")
        return view

    def _record(self, name: str) -> tuple[RunRecord | None, str | None]:
        """The saved record (re-read only when ``run.json`` changed), or why it cannot be read."""
        path = self.checkpoints / name / protocol.RECORD_FILE
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None, None
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._records.get(name)
        if cached is not None and cached[0] == key:
            return cached[1], None
        try:
            record = read_record(self.checkpoints, name)
        except UserError as error:
            return None, str(error)
        self._records[name] = (key, record)
        return record, None


def _stamp(folder: str) -> Stamp:
    """The folder's, ``run.json``'s and ``request.json``'s (inode, mtime, size), None where absent (plain strings and
    ``os.lstat``: at 1,000 runs a poll, building ``Path`` objects cost more than the calls)."""
    return tuple(
        _file_stamp(path)
        for path in (folder, os.path.join(folder, protocol.RECORD_FILE), os.path.join(folder, protocol.REQUEST_FILE))
    )


def _file_stamp(path: str) -> tuple[int, int, int] | None:
    """A file's or folder's (inode, mtime, size) by ``lstat``, None where absent or unreadable."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def read_request(folder: Path) -> dict[str, Any] | None:
    """A run folder's ``request.json`` (a queued run's config, status and owner), or None when absent or unreadable.

    The one reader of that file: a request that is not a JSON object, too large, or not a regular
    file reads as no request (:func:`engine.runs.protocol.read_json`).
    """
    return protocol.read_json(folder / protocol.REQUEST_FILE)


def request_config(request: dict[str, Any] | None) -> RunConfig | None:
    """The config a request queues, or None where it holds none or an invalid one."""
    if not request or not isinstance(request.get("config"), dict):
        return None
    try:
        return RunConfig.model_validate(request["config"])
    except ValidationError:
        return None


def iso_time(seconds: float) -> str:
    """A time as ``run.json`` writes its ``created``: ISO 8601 in UTC, to the millisecond."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def _folder_time(folder: Path) -> str:
    """A run folder's modification time, for a run that says nothing of its creation (empty when unreadable)."""
    try:
        return iso_time(folder.lstat().st_mtime)
    except OSError:
        return ""
