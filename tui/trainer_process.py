"""The training process: one engine ``Trainer`` run in the main thread of a fresh interpreter.

Why a process and not a thread of the app: PyTorch's CPU kernels ran about 20% slower when called
from a secondary thread than from a main thread (16-core host, default model on the embedded
corpus: 23–24 steps/s in a thread, 28–31 in the main thread, 29–30 in a fresh process; the
Textual UI itself used under 10% of one core). A fresh interpreter also starts CUDA cleanly.

Protocol, over the process's pipes: the app writes one pickled :class:`TrainerJob` to stdin; the
process writes each engine event, pickled, to its stdout (a :class:`Refused` instead when the
trainer cannot be built). A line on stdin, or stdin closing because the app is gone, stops the
run after the current batch with a checkpoint. The process ignores SIGINT, SIGHUP and SIGTERM: a
dropped SSH connection signals the whole process group, and it is the app that then stops the
run and waits for its checkpoint. Nothing here imports Textual.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from engine.config import RunConfig

# Imported by name (not run as __main__) so that what it pickles names this module's classes.
COMMAND = [sys.executable, "-c", "from tui.trainer_process import main; main()"]


@dataclass(frozen=True)
class TrainerJob:
    """What to train: a new run from ``config``, or the saved run ``name`` resumed."""

    name: str
    config: RunConfig | None
    resume: bool
    checkpoints: Path
    device: str


@dataclass(frozen=True)
class Refused:
    """The trainer could not be built; ``message`` is the engine's one-sentence reason."""

    message: str


def main() -> None:
    """Read the job, train, stream the events; see the module docstring for the protocol."""
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    inbox = sys.stdin.buffer
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the events pipe carries events only: stray prints go to stderr
    job: TrainerJob = pickle.load(inbox)

    from engine.errors import UserError
    from engine.trainer import Trainer

    try:
        if job.resume:
            trainer = Trainer.resume(job.checkpoints, job.name, device=job.device)
        else:
            trainer = Trainer.new(job.config, job.checkpoints)
    except UserError as error:
        send(outbox, Refused(str(error)))
        return
    threading.Thread(target=stop_on_request, args=(trainer, inbox), daemon=True).start()
    for event in trainer.events():
        send(outbox, event)


def send(outbox: BinaryIO, item: Any) -> None:
    """Pass one item to the app; if the app is gone, carry on: the run is stopping and will save."""
    try:
        pickle.dump(item, outbox)
        outbox.flush()
    except BrokenPipeError:
        pass


def stop_on_request(trainer: Any, inbox: BinaryIO) -> None:
    """Stop the run at the app's request, or when the app's end of the pipe closes."""
    inbox.readline()
    trainer.stop()

