"""The trainer command an executor runs: ``python -m engine.worker --checkpoints DIR --device D --threads T RUN…``.

Each RUN is a folder under DIR: a queued run (its ``request.json`` holds the config) starts, a
saved one resumes. Everything the trainer reports goes into the run folder (:mod:`engine.rundir`);
its own output is only a log. SIGTERM and SIGINT stop the runs after their batch with a
checkpoint; SIGHUP is ignored (the process is in its own session already; a hangup is not a stop).
Exit code: the worst of its runs' (0 finished, 130 stopped, 3 diverged, 2 refused, 1 failed).

A job of several runs trains them one after the other here; a stacked trainer that trains them
side by side in one process plugs in at :func:`train_job`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from engine import rundir
from engine.errors import UserError
from engine.events import FINAL_EVENTS, RunFailed, RunStarted

EXIT_CODES = {"finished": 0, "stopped": 130, "diverged": 3, "failed": 1}
SEVERITY = {0: 0, 130: 1, 3: 2, 2: 3, 1: 4}


def build_trainer(checkpoints: Path, name: str, device: str):
    """The trainer for one folder: resume a saved run, or start the queued one."""
    from engine.config import RunConfig
    from engine.trainer import Trainer

    folder = checkpoints / name
    if (folder / rundir.RECORD_FILE).exists():
        return Trainer.resume(checkpoints, name, device=device)
    request = rundir.read_json(folder / rundir.REQUEST_FILE)
    if request is None or not isinstance(request.get("config"), dict):
        raise UserError(f"{str(folder)!r} holds neither a saved run nor a queued one; nothing to train there.")
    config = RunConfig.model_validate(request["config"])
    config = config.model_copy(update={"name": name, "train": config.train.model_copy(update={"device": device})})
    return Trainer.new(config, checkpoints, queued=True)


def train_run(checkpoints: Path, name: str, device: str, trainers: list) -> int:
    """Train one run to its end; the exit code its final status calls for."""
    try:
        trainer = build_trainer(checkpoints, name, device)
    except UserError as error:
        return refused(checkpoints / name, str(error))
    trainers.append(trainer)
    final = None
    for event in trainer.events():
        if isinstance(event, RunStarted):
            (checkpoints / name / rundir.REQUEST_FILE).unlink(missing_ok=True)  # run.json speaks for the run from here on
            print(f"{name}: training on {event.device}, {event.total_steps - event.start_step} batches to go", flush=True)
        elif isinstance(event, FINAL_EVENTS):
            final = event
    if isinstance(final, RunFailed) and final.user_error:
        return refused(checkpoints / name, final.message)
    status = rundir.final_status(final)
    message = getattr(final, "message", None)
    print(f"{name}: {status}" + (f" — {message}" if message else ""), flush=True)
    if isinstance(final, RunFailed) and final.details:
        print(final.details, flush=True)
    return EXIT_CODES[status]


def refused(folder: Path, message: str) -> int:
    """A run that could not start: a queued one keeps the reason in its request (status ``failed``)."""
    print(f"error: {message}", flush=True)
    request = rundir.read_json(folder / rundir.REQUEST_FILE)
    if request is not None and not (folder / rundir.RECORD_FILE).exists():
        request.update(status="failed", message=message)
        rundir.replace_file(folder / rundir.REQUEST_FILE, json.dumps(request).encode())
    return 2


def train_job(checkpoints: Path, names: list[str], device: str) -> int:
    """Train every run of the job; SIGTERM/SIGINT stop the one training and the rest do not start."""
    trainers: list = []
    stopping = []

    def stop(signum, frame) -> None:
        stopping.append(signum)
        for trainer in trainers:
            trainer.stop()

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    codes = []
    for name in names:
        if stopping:
            rundir.request_stop(checkpoints / name)
            continue
        codes.append(train_run(checkpoints, name, device, trainers))
    return max(codes, default=130, key=SEVERITY.__getitem__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.worker", description="Train the queued or saved runs named (an executor's trainer command).")
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--nice", type=int, default=0, help="niceness to add (lower CPU priority than interactive processes)")
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    if args.nice > 0:
        os.nice(args.nice)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    return train_job(args.checkpoints, args.runs, args.device)


if __name__ == "__main__":
    sys.exit(main())
