"""The trainer command an executor runs: ``python -m engine.jobs.worker --checkpoints DIR --device D --threads T RUN…``.

Each RUN is a folder under DIR: a queued run (its ``request.json`` holds the config) starts, a
saved one resumes. Everything the trainer reports goes into the run folder (:mod:`engine.runs.protocol`);
its own output is only a log. SIGTERM and SIGINT stop the runs after their batch with a
checkpoint; SIGHUP is ignored (the process is in its own session already; a hangup is not a stop).
Exit code: the worst of its runs' (0 finished, 130 stopped, 3 diverged, 2 refused, 1 failed).

A job of several runs trains them one after the other, or, with ``--stacked``, side by side as
one stacked model (:class:`engine.training.stacked.StackedTrainer`), each still writing its own folder.
A stacked job run again after its first save (a cluster node lost mid-run) resumes its runs one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from engine.errors import UserError
from engine.exit_codes import exit_code
from engine.runs import protocol
from engine.safe_io import atomic_write, describe_os_error
from engine.training.events import FINAL_EVENTS, Event, RunFailed, RunStarted, final_status

if TYPE_CHECKING:  # imported where used, so that the worker starts light
    from engine.config.models import RunConfig
    from engine.training.stacked import StackedTrainer
    from engine.training.trainer import Trainer

SEVERITY = {0: 0, 130: 1, 3: 2, 2: 3, 1: 4}


def queued_config(checkpoints: Path, name: str, device: str) -> RunConfig:
    """The config a sweep queued in ``name``'s folder, placed on ``device``."""
    from pydantic import ValidationError

    from engine.config.models import RunConfig

    folder = checkpoints / name
    request = protocol.read_json(folder / protocol.REQUEST_FILE)
    if request is None or not isinstance(request.get("config"), dict):
        raise UserError(f"{str(folder)!r} holds neither a saved run nor a queued one; nothing to train there.")
    try:
        config = RunConfig.model_validate(request["config"])
    except ValidationError as error:
        raise UserError(
            f"The queued config in {str(folder)!r} is not valid ({error.errors()[0]['msg']}); queue the run again."
        ) from None
    return config.model_copy(update={"name": name, "train": config.train.model_copy(update={"device": device})})


def build_trainer(checkpoints: Path, name: str, device: str, epochs: int | None = None) -> Trainer:
    """The trainer for one folder: resume a saved run (to ``epochs`` in all, when given), or start the queued one."""
    from engine.training.trainer import Trainer

    if (checkpoints / name / protocol.RECORD_FILE).exists():
        return Trainer.resume(checkpoints, name, epochs=epochs, device=device)
    return Trainer.new(queued_config(checkpoints, name, device), checkpoints, queued=True)


def train_run(
    checkpoints: Path, name: str, device: str, trainers: list[Trainer | StackedTrainer], epochs: int | None = None
) -> int:
    """Train one run to its end; the exit code its final status calls for."""
    try:
        trainer = build_trainer(checkpoints, name, device, epochs)
    except UserError as error:
        return refused(checkpoints / name, str(error))
    trainers.append(trainer)
    return follow(checkpoints, trainer.events())[name]


def train_stack(checkpoints: Path, names: list[str], device: str, trainers: list[Trainer | StackedTrainer]) -> list[int]:
    """Train queued runs as one stacked model; each run's exit code."""
    from engine.training.stacked import StackedTrainer

    try:
        trainer = StackedTrainer.new([queued_config(checkpoints, name, device) for name in names], checkpoints, queued=True)
    except UserError as error:
        return [refused(checkpoints / name, str(error)) for name in names]
    trainers.append(trainer)
    codes = follow(checkpoints, trainer.events())
    return [codes.get(name, 1) for name in names]


def follow(checkpoints: Path, events: Iterable[Event]) -> dict[str, int]:
    """Log a trainer's events (solo or stacked); each run's exit code from its final event."""
    codes: dict[str, int] = {}
    for event in events:
        name = event.run_name
        if isinstance(event, RunStarted):
            (checkpoints / name / protocol.REQUEST_FILE).unlink(missing_ok=True)  # run.json speaks for the run from here on
            print(f"{name}: training on {event.device}, {event.total_steps - event.start_step} batches to go", flush=True)
        elif isinstance(event, RunFailed) and event.user_error:
            codes[name] = refused(checkpoints / name, event.message)
        elif isinstance(event, FINAL_EVENTS):
            status = final_status(event)
            message = getattr(event, "message", None)
            print(f"{name}: {status}" + (f" — {message}" if message else ""), flush=True)
            if isinstance(event, RunFailed) and event.details:
                print(event.details, flush=True)
            codes[name] = exit_code(status)
    return codes


def refused(folder: Path, message: str) -> int:
    """A run that could not start: a queued one keeps the reason in its request (status ``failed``); a saved one that
    was to resume drops its request, so it reads as it was saved again (the reason is in its ``trainer.log``)."""
    print(f"error: {message}", flush=True)
    request = protocol.read_json(folder / protocol.REQUEST_FILE)
    try:
        if request is not None and not (folder / protocol.RECORD_FILE).exists():
            request.update(status="failed", message=message)
            atomic_write(folder / protocol.REQUEST_FILE, json.dumps(request).encode())
        elif request is not None:
            (folder / protocol.REQUEST_FILE).unlink(missing_ok=True)
    except OSError as error:  # the folder went meanwhile (deleted or renamed): the reason stays in this log
        print(f"error: run folder {str(folder)!r} could not keep the reason ({describe_os_error(error)})", flush=True)
    return 2


def train_job(checkpoints: Path, names: list[str], device: str, stacked: bool = False, epochs: int | None = None) -> int:
    """Train every run of the job (one after the other, or ``stacked``); SIGTERM/SIGINT stop the training ones and the rest do not start."""
    trainers: list[Trainer | StackedTrainer] = []
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        for trainer in trainers:
            trainer.stop()

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    if stacked and not any((checkpoints / name / protocol.RECORD_FILE).exists() for name in names):
        return max(train_stack(checkpoints, names, device, trainers), key=SEVERITY.__getitem__)
    codes = []
    for name in names:
        if stopping:
            protocol.request_stop(checkpoints / name)
            continue
        codes.append(train_run(checkpoints, name, device, trainers, epochs))
    return max(codes, default=130, key=SEVERITY.__getitem__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.jobs.worker", description="Train the queued or saved runs named (an executor's trainer command)."
    )
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--stacked", action="store_true", help="train the (queued) runs as one stacked model")
    parser.add_argument("--nice", type=int, default=0, help="niceness to add (lower CPU priority than interactive processes)")
    parser.add_argument("--epochs", type=int, help="saved runs train on to this many epochs in all (trained further)")
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    if args.nice > 0:
        os.nice(args.nice)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    return train_job(args.checkpoints, args.runs, args.device, args.stacked, args.epochs)


if __name__ == "__main__":
    sys.exit(main())
