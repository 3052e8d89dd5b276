"""The run-directory protocol: what a run's folder says about the run, for any process on any box.

A run folder ``<checkpoints>/<run>/`` is written by one trainer (the *writer*) and read by
anyone (the app, ``lm-explorer runs``, a sweep runner on this or another box sharing the folder):

- ``run.json`` (:mod:`engine.runs.checkpoint`): the saved record and its status.
- ``request.json``: a run that is queued and not started yet (its config and who queued it).
- ``lock``: the writer's lock (``flock``), held for the run's whole training life and removed
  with it; it also names the holder (pid, host). A second writer is refused with a sentence
  naming that process.
- ``heartbeat``: rewritten by the writer every ``HEARTBEAT_S`` seconds (pid, host, device, step).
  On the writer's own host the lock tells whether it lives; from another host (a shared
  folder) a beat older than ``STALE_AFTER_S`` means it died.
- ``stop``: a stop request any process may leave; the writer checks for it every
  ``STOP_POLL_S`` seconds, ends after the current batch with a checkpoint and removes it.

Run status is one typed set, its transitions are in :data:`TRANSITIONS`, and a status is derived
in one place (:func:`derive_status`): a run saved as ``training`` whose writer is gone reads as
``interrupted`` (and can be resumed), never as ``training`` forever.

Every file here is opened through :mod:`engine.safe_io`: no symlinks followed, regular files only. Nothing here
imports torch, so listings and the app's follower stay light.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from engine.errors import UserError
from engine.safe_io import atomic_write, open_regular, read_regular

Status = Literal["queued", "training", "stopped", "finished", "diverged", "failed", "interrupted"]
STATUSES: tuple[Status, ...] = get_args(Status)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    "queued": frozenset({"training", "stopped", "failed", "interrupted"}),
    "training": frozenset({"stopped", "finished", "diverged", "failed", "interrupted"}),
    "stopped": frozenset({"queued", "training"}),
    "interrupted": frozenset({"queued", "training"}),
    "diverged": frozenset({"queued", "training"}),
    "failed": frozenset({"queued", "training"}),
    "finished": frozenset({"queued", "training"}),  # trained further with more epochs
}
"""Which status may follow which. ``interrupted`` is never written: it is what ``training`` reads as once its writer is gone."""

ALIVE: frozenset[Status] = frozenset({"queued", "training"})
RESUMABLE: frozenset[Status] = frozenset(
    status for status, nexts in TRANSITIONS.items() if "training" in nexts and status not in ALIVE
)

RECORD_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
MAX_METRICS_LINE_BYTES = 1 * 2**20
REQUEST_FILE = "request.json"
LOCK_FILE = "lock"
TRAINING, MAINTENANCE = "training", "maintenance"  # what a lock holder holds it for (its file says)
HEARTBEAT_FILE = "heartbeat"
STOP_FILE = "stop"
LOG_FILE = "trainer.log"
RUNNER_LOG_FILE = "runner.log"
PROTOCOL_FILES = (REQUEST_FILE, LOCK_FILE, HEARTBEAT_FILE, STOP_FILE, LOG_FILE, RUNNER_LOG_FILE)

HEARTBEAT_S = 2.0
STOP_POLL_S = 0.2
STALE_AFTER_S = 30.0
LOCK_RETRY_S = 0.5
SMALL_FILE_LIMIT = 1 << 20
HOST = socket.gethostname()


def can_become(old: Status, new: Status) -> bool:
    return new in TRANSITIONS[old]


def derive_status(
    saved: Status | None, requested: Status | None, writer_alive: bool, owner_alive: bool, stop_requested: bool
) -> Status | None:
    """A run's status from its files, the one place it is decided.

    ``saved``: the status in ``run.json`` (None before the first save); ``requested``: the status in
    ``request.json`` (None when the run is not waiting to start); ``writer_alive``: a trainer holds
    the run; ``owner_alive``: the process that queued it (a sweep runner, a launched trainer) lives.
    None: the folder holds no run (yet).
    """
    if writer_alive:
        return "training"  # also between a resume and its first save, while run.json still says how it ended before
    if requested == "queued":
        if stop_requested:
            return "stopped"
        if owner_alive:
            return "queued"
    if saved is not None:
        return "interrupted" if saved == "training" else saved
    if requested == "queued":
        return "interrupted"  # its owner died before starting it
    return requested  # None, or stopped / failed before it started: the runner wrote why


# Safe files ---------------------------------------------------------------------------------------


def protocol_file(path: Path) -> str:
    """How refusals name a protocol file: ``Run 'x' file 'heartbeat'``."""
    return f"Run {path.parent.name!r} file {path.name!r}"


def read_json(path: Path) -> dict[str, Any] | None:
    """A small JSON object file, or None when absent, unreadable or not an object (a reader never fails on it)."""
    try:
        value = json.loads(read_regular(path, protocol_file(path), SMALL_FILE_LIMIT))
    except (UserError, OSError, ValueError, RecursionError):  # FileNotFoundError included
        return None
    return value if isinstance(value, dict) else None


# Names ---------------------------------------------------------------------------------------------


def reserve(checkpoints: Path, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``…: the first name whose folder this call creates (``mkdir`` is atomic,
    so processes started in the same second never share a folder)."""
    candidate, n = base, 1
    try:
        checkpoints.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                (checkpoints / candidate).mkdir()
                return candidate
            except FileExistsError:
                n += 1
                candidate = f"{base}-{n}"
    except OSError as error:
        raise UserError(
            f"Cannot create a run folder in {str(checkpoints)!r} ({error.strerror}); "
            "give --checkpoints a folder you can write to."
        ) from None


def claim(checkpoints: Path, name: str) -> str:
    """Create the folder of the run ``name``, which must not exist yet."""
    try:
        checkpoints.mkdir(parents=True, exist_ok=True)
        (checkpoints / name).mkdir()
    except FileExistsError:
        raise UserError(f"A run named {name!r} already exists in {str(checkpoints)!r}; choose another --name.") from None
    except OSError as error:
        raise UserError(
            f"Cannot create a run folder in {str(checkpoints)!r} ({error.strerror}); "
            "give --checkpoints a folder you can write to."
        ) from None
    return name


def occupied(folder: Path) -> bool:
    """Whether ``folder`` holds a queued run or any file a new run must not take over (protocol files aside)."""
    try:
        return any(entry.name == REQUEST_FILE or entry.name not in PROTOCOL_FILES for entry in os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return False


def discard_unsaved(folder: Path) -> None:
    """Remove a run folder that never got past its first save (only protocol files in it); anything else stays."""
    for name in (LOCK_FILE, HEARTBEAT_FILE, STOP_FILE, LOG_FILE, RUNNER_LOG_FILE):
        with contextlib.suppress(OSError):  # gone, a directory, or the folder refuses
            (folder / name).unlink()
    with contextlib.suppress(OSError):  # not empty: it holds something that is not ours to delete
        folder.rmdir()


# The writer's lock -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """The process that holds (or last held) a run's lock."""

    pid: int | None
    host: str | None
    task: str | None = None  # what it holds the lock for: TRAINING, or MAINTENANCE (a rename or a delete)

    @property
    def trains(self) -> bool:
        """Whether the holder is a trainer: any holder but a maintenance. A lock file that names nobody yet (its holder
        has the lock and is writing its name) counts as a trainer, so a trainer is never read as dead."""
        return self.task != MAINTENANCE

    def describe(self) -> str:
        where = "" if self.host in (None, HOST) else f" on {self.host}"
        return f"process {self.pid}{where}" if self.pid else "another process"


def _holder(raw: dict[str, Any] | None) -> Holder:
    raw = raw or {}
    pid, host, task = raw.get("pid"), raw.get("host"), raw.get("task")
    return Holder(
        pid if isinstance(pid, int) else None,
        host if isinstance(host, str) else None,
        task if isinstance(task, str) else None,
    )


def busy_error(name: str, holder: Holder) -> UserError:
    if holder.task == MAINTENANCE:
        return UserError(f"Run {name!r} is being renamed or deleted by {holder.describe()}; try again in a moment.")
    return UserError(
        f"Run {name!r} is being trained by {holder.describe()}; stop it with 'lm-explorer stop {name}' or wait until it ends."
    )


class RunLock:
    """The writer's exclusive ``flock`` on ``<run>/lock``, naming its holder inside the file."""

    def __init__(self, folder: Path, name: str, task: str = TRAINING):
        self.folder, self.name, self.task = folder, name, task
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise the sentence naming its holder. Retries briefly: readers probe it for an instant.

        The file is removed when the lock is let go, so a lock taken on a file that has meanwhile been
        removed (or replaced) is no lock: it is checked against the path and taken again.
        """
        path = self.folder / LOCK_FILE
        deadline = time.monotonic() + LOCK_RETRY_S
        while True:
            fd = open_regular(path, protocol_file(path), os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise busy_error(self.name, lock_holder(self.folder)) from None
                time.sleep(0.02)
                continue
            try:
                current = path.lstat().st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)  # the holder before let go and removed it between our open and our lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": HOST, "task": self.task, "started": time.time()}).encode(), 0)
        self._fd = fd

    def identity(self) -> tuple[int, int]:
        """The held lock file's device and inode (to check which folder's lock it is)."""
        assert self._fd is not None, "the lock is held"
        held = os.fstat(self._fd)
        return held.st_dev, held.st_ino

    def release(self) -> None:
        """Remove the lock file, then let go (in this order, see :meth:`acquire`)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):  # gone, or the folder refuses: a lock file nobody flocks is free
                (self.folder / LOCK_FILE).unlink()
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def lock_holder(folder: Path) -> Holder:
    return _holder(read_json(folder / LOCK_FILE))


def lock_held(folder: Path) -> bool:
    """Whether a writer holds ``folder``'s lock now (probed with a shared lock taken and dropped at once)."""
    try:
        fd = open_regular(folder / LOCK_FILE, protocol_file(folder / LOCK_FILE))
    except (FileNotFoundError, UserError, OSError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def ensure_free(folder: Path, name: str) -> None:
    """Raise the holder's sentence when a writer holds ``folder``'s lock."""
    if lock_held(folder):
        raise busy_error(name, lock_holder(folder))


# Heartbeat and stop requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Beat:
    """The writer's last heartbeat: who, where, on which device, how far, and when (wall clock)."""

    pid: int | None
    host: str | None
    device: str | None
    step: int
    total_steps: int
    time: float

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.time)


def read_beat(folder: Path) -> Beat | None:
    raw = read_json(folder / HEARTBEAT_FILE)
    if raw is None:
        return None
    holder = _holder(raw)

    def number(key: str, kind: type) -> Any:
        value = raw.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else kind(0)

    device = raw.get("device")
    return Beat(
        holder.pid,
        holder.host,
        device if isinstance(device, str) else None,
        int(number("step", int)),
        int(number("total_steps", int)),
        float(number("time", float)),
    )


def request_stop(folder: Path) -> None:
    """Leave a stop request in ``folder`` (any process, any host sharing the folder)."""
    atomic_write(folder / STOP_FILE, json.dumps({"pid": os.getpid(), "host": HOST, "time": time.time()}).encode())


def stop_requested(folder: Path) -> bool:
    return os.path.lexists(folder / STOP_FILE)


def clear_stop(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        (folder / STOP_FILE).unlink()


class Writer:
    """What a trainer holds for its run's training life: the lock, a heartbeat, and a watch on the stop file.

    ``on_stop`` is called (from the watcher thread) once a stop request appears. :meth:`start` takes
    the lock (or raises the holder's sentence), :meth:`close` lets go of everything; :meth:`progress`
    updates what the next beat says.
    """

    def __init__(self, folder: Path, name: str, on_stop: Any, device: str = ""):
        self.folder, self.name, self.on_stop = folder, name, on_stop
        self.lock = RunLock(folder, name)
        self.device, self.step, self.total_steps = device, 0, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"writer-{name}", daemon=True)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        if not os.path.lexists(self.folder / REQUEST_FILE):
            clear_stop(self.folder)  # left for an earlier life of the run; one left while it was queued is for this one
        self.beat()
        self._thread.start()

    def close(self) -> None:
        """Let go of everything, even where the folder has become unwritable (the training's own error says so):
        the flock ends with its descriptor, and a heartbeat left behind goes stale."""
        self._done.set()
        self._thread.join()
        for leftover in (HEARTBEAT_FILE, STOP_FILE):
            with contextlib.suppress(OSError):
                (self.folder / leftover).unlink()
        self.lock.release()

    def progress(self, step: int, total_steps: int, device: str | None = None) -> None:
        self.step, self.total_steps = step, total_steps
        if device and device != self.device:
            self.device = device
            self.beat()  # readers learn the device at once

    def beat(self) -> None:
        line = {
            "pid": os.getpid(),
            "host": HOST,
            "device": self.device,
            "step": self.step,
            "total_steps": self.total_steps,
            "time": time.time(),
        }
        with contextlib.suppress(OSError):  # a full disk must not end the run here; the save will say so
            atomic_write(self.folder / HEARTBEAT_FILE, json.dumps(line).encode(), durable=False)

    def _watch(self) -> None:
        last_beat, stopping = time.monotonic(), False
        while not self._done.wait(STOP_POLL_S):
            if not stopping and stop_requested(self.folder):
                stopping = True
                self.on_stop()
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                self.beat()
                last_beat = time.monotonic()


# What a folder says ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Liveness:
    """Whether a run's writer lives, and what its last beat said."""

    alive: bool
    beat: Beat | None
    holder: Holder


def liveness(folder: Path) -> Liveness:
    """Alive: on this host, a trainer holds the lock (a rename or a delete holding it is no training); from another
    host (shared folder), the beat is fresh."""
    beat = read_beat(folder)
    holder = lock_holder(folder)
    host = (beat.host if beat else None) or holder.host
    if host is not None and host != HOST:
        return Liveness(beat is not None and beat.age < STALE_AFTER_S, beat, holder)
    return Liveness(holder.trains and lock_held(folder), beat, holder)


def owner_alive(owner: dict[str, Any] | None) -> bool:
    """Whether the process that queued a run (its sweep runner) still lives; one on another host is assumed to."""
    holder = _holder(owner)
    if holder.host not in (None, HOST):
        return True
    if holder.pid is None:
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
