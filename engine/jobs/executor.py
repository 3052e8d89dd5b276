"""Where trainer commands run: one small interface; local detached processes here, Ray tasks in :mod:`engine.jobs.ray_executor`.

A :class:`JobSpec` is a trainer command's whole input: the runs one trainer process trains (one
run today; a stacked job trains several in one process), the shared checkpoints folder, the
device and the CPU threads it may use. Everything else the trainer reads from the run folders,
and everything it reports it writes there (:mod:`engine.runs.protocol`), so an executor only has to
start the command somewhere that sees the same folder, say when it has ended, and say how many
jobs fit at once (:meth:`Executor.slots`). The Ray executor (:mod:`engine.jobs.ray_executor`)
submits :meth:`JobSpec.command` as a task on a node mounting the folder; nothing else changes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.jobs.placement import Slot, plan_slots
from engine.runs import protocol
from engine.safe_io import open_regular

TRAINER_NICE = 5
"""Trainers are batch work: a niceness above the app's lets its keys and frames through first when they share cores."""


@dataclass(frozen=True)
class JobSpec:
    """One trainer process: ``runs`` (folders under ``checkpoints``, queued or resumable) on ``device`` with ``threads``;
    ``stacked``: the runs (all queued, differing only in their objective) train as one stacked model (:mod:`engine.training.stacked`);
    ``epochs``: saved runs train on to this many epochs in all."""

    runs: tuple[str, ...]
    checkpoints: Path
    device: str
    threads: int
    stacked: bool = False
    nice: int = TRAINER_NICE
    epochs: int | None = None  # a saved run's new total of epochs (trained further)

    def command(self) -> list[str]:
        """The trainer command (:mod:`engine.jobs.worker`), the same on any box."""
        return [
            sys.executable,
            "-m",
            "engine.jobs.worker",
            "--checkpoints",
            str(self.checkpoints),
            "--device",
            self.device,
            "--threads",
            str(self.threads),
            "--nice",
            str(self.nice),
            *(["--stacked"] if self.stacked else []),
            *(["--epochs", str(self.epochs)] if self.epochs is not None else []),
            *self.runs,
        ]

    @property
    def log(self) -> Path:
        """Where the trainer's own output goes: the first run's ``trainer.log``."""
        return self.checkpoints / self.runs[0] / protocol.LOG_FILE


class Job(Protocol):
    """A launched trainer command."""

    spec: JobSpec

    def poll(self) -> int | None:
        """Its exit code once it has ended, else None."""


class Executor(Protocol):
    outlives_caller: bool
    """Whether a launched job goes on when the process that launched it ends (else a detached runner launches it)."""

    def slots(self, device: str, parallel: int | None, jobs: int, cpus: int | None = None) -> list[Slot]:
        """Where ``jobs`` jobs run, as many slots as run at once (``parallel``: at most that many; ``cpus``: the cores to share)."""

    def launch(self, spec: JobSpec) -> Job:
        """Start the trainer command for ``spec``; return at once."""

    def options(self) -> list[str]:
        """The command-line options that name this executor (:mod:`engine.jobs.executors`), for a detached runner."""


def child_environment(threads: int | None = None) -> dict[str, str]:
    """This interpreter's environment, with its import path (so a child runs the same code) and a thread count."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def die_with_parent() -> None:
    """In a child before it execs: the kernel sends it SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def spawn_detached(command: list[str], log: Path, threads: int | None = None, tied: bool = False) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (SIGHUP to this terminal does not reach it), output appended to ``log``;
    ``tied``: it is killed when this process dies (a Ray task's trainer goes with its task's worker, as on a lost node)."""
    fd = open_regular(log, protocol.protocol_file(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_environment(threads),
            close_fds=True,
            preexec_fn=die_with_parent if tied else None,  # only a prctl between fork and exec
        )
    finally:
        os.close(fd)


@dataclass(eq=False)
class LocalJob:
    spec: JobSpec
    process: subprocess.Popen[bytes]

    def poll(self) -> int | None:
        return self.process.poll()


class LocalExecutor:
    """Trainer commands as detached processes on this machine."""

    outlives_caller = True

    def slots(self, device: str, parallel: int | None, jobs: int, cpus: int | None = None) -> list[Slot]:
        return plan_slots(device, parallel, jobs, cpus=cpus)

    def options(self) -> list[str]:
        return []

    def launch(self, spec: JobSpec) -> LocalJob:
        return LocalJob(spec, spawn_detached(spec.command(), spec.log, spec.threads))
