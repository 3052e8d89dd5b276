"""Training off the UI: the app's worker thread that runs one training process and relays its events.

The worker starts :mod:`tui.trainer_process` in a fresh interpreter (see there for why a process), hands the app
a :class:`RunHandle` to stop it, and posts each event the process sends as a
:class:`TrainingEvent`. The engine emits step metrics only every ``log_every`` batches, so
messages stay few. Nothing else crosses to the UI.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from textual.message import Message

from engine.config import RunConfig
from engine.events import FINAL_EVENTS, Event, RunFailed
from tui.trainer_process import COMMAND, Refused, TrainerJob


@dataclass
class Job:
    """One run to train: a new ``config``, or the saved run ``name`` to resume."""

    name: str
    config: RunConfig | None = None
    resume: bool = False
    previous_status: str = "queued"
    load_history: bool = False


class TrainingEvent(Message):
    """An engine training event, delivered on the UI thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class JobRefused(Message):
    """The trainer could not be built (a taken name, a changed corpus…): the sentence says why."""

    def __init__(self, job: Job, message: str) -> None:
        super().__init__()
        self.job = job
        self.message = message


class HistoryLoaded(Message):
    """A saved run's metric history (``metrics.jsonl`` lines) and its metric definitions."""

    def __init__(self, name: str, lines: list[dict[str, Any]], definitions: dict[str, str]) -> None:
        super().__init__()
        self.name = name
        self.lines = lines
        self.definitions = definitions


class RunHandle:
    """The app's side of a training process: ``stop`` asks it to end after the current batch, with a checkpoint."""

    def __init__(self, requests: IO[bytes]) -> None:
        self._requests = requests

    def stop(self) -> None:
        try:
            self._requests.write(b"stop\n")
            self._requests.flush()
        except (OSError, ValueError):
            pass  # the process has already ended


def load_history(checkpoints: Path, name: str) -> HistoryLoaded:
    """Read a saved run (weights included, as ``engine.checkpoint.load_run`` does) for its metric lines."""
    from engine.checkpoint import load_run
    from engine.metrics import definitions_for

    run = load_run(checkpoints, name)
    return HistoryLoaded(name, run.metrics, definitions_for(run.record.config.model.head))


def train(job: Job, checkpoints: Path, device: str, post: Callable[[Message], Any], register: Callable[[RunHandle], None]) -> None:
    """The body of a training worker thread: start the process, register its handle, relay its events."""
    if job.load_history:
        post(load_history(checkpoints, job.name))
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=errors, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))})
        try:
            pickle.dump(TrainerJob(job.name, job.config, job.resume, Path(checkpoints), device), process.stdin)
            process.stdin.flush()
            register(RunHandle(process.stdin))
            relay(job, process, post, errors)
        finally:
            process.stdin.close()  # an unfinished run stops and saves when its pipe closes
            process.wait()


def relay(job: Job, process: subprocess.Popen, post: Callable[[Message], Any], errors: IO[bytes]) -> None:
    """Post the process's events until its final one; a process that ends without one is a failed run."""
    while True:
        try:
            item = pickle.load(process.stdout)
        except EOFError:
            code = process.wait()
            errors.seek(0)
            last = (errors.read().decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            post(TrainingEvent(RunFailed(job.name, f"The training process ended unexpectedly (exit code {code}: {last}); "
                                                   "its last checkpoint is kept.", user_error=False)))
            return
        if isinstance(item, Refused):
            post(JobRefused(job, item.message))
            return
        post(TrainingEvent(item))
        if isinstance(item, FINAL_EVENTS):
            return
