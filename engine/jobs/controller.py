"""Run lifecycle for the CLI, the app and the benchmarks: queue, place, launch, stop, resume, and each run's state.

The checkpoints folder is the record of every run (:mod:`engine.runs.protocol`): the controller keeps no
state of its own that a second app, ``lm-explorer runs`` or a process on another box could not
read from there. A sweep is queued as run folders holding a ``request.json`` (status ``queued``),
then started in turn by one *sweep runner* (:meth:`Controller.run_queue`): in the foreground for
``lm-explorer sweep``, or detached in its own session (``python -m engine.jobs.controller``, the same
code) when the app or ``sweep --detach`` starts it. The runner places each run on a
:class:`Slot` (a device and a share of the CPU threads) and starts its trainer command through an
:class:`~engine.jobs.executor.Executor`.

Placement (:func:`plan_slots`): on CUDA every job of a sweep at once, spread over the devices
given (``cuda:0,cuda:1``) or found (``auto``); on CPU one job per ``CPU_THREADS_PER_RUN`` cores,
so runs never oversubscribe them. A job is one trainer process: one run, or (stacking, the
default on CUDA: :func:`should_stack`) a stack of queued runs that differ only in their objective,
trained as one model (:mod:`engine.training.stacked`), cut into groups that fit the device's memory.
Why CPU runs go side by side with a thread each rather than one after another with all the cores,
measured: ``docs/design/threads.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.config.models import RunConfig
from engine.devices import cuda_devices, parse_devices
from engine.errors import UserError
from engine.jobs.executor import Executor, Job, JobSpec, LocalExecutor, spawn_detached
from engine.jobs.executors import add_executor_options, executor_for
from engine.jobs.placement import Slot, parse_parallel, should_stack
from engine.runs import protocol
from engine.runs.names import check_name
from engine.runs.view import RunReader, RunView, iso_time, read_request, request_config
from engine.safe_io import atomic_write

POLL_S = 0.2


class Controller:
    """Everything that changes a run's life in one checkpoints folder; :attr:`runs` reads their state."""

    def __init__(self, checkpoints: Path | str, executor: Executor | None = None):
        self.checkpoints = Path(checkpoints)
        self.executor = executor or LocalExecutor()
        self.runs = RunReader(self.checkpoints)
        self._children: list[subprocess.Popen[bytes]] = []

    # Queueing and launching

    def queue(self, configs: Iterable[RunConfig], rename: bool = True) -> list[str]:
        """Write each config as a queued run, its folder reserved; the names given.

        A taken name becomes ``name-2``, ``name-3``… with ``rename``, else it is refused.
        """
        names = []
        for config in configs:
            check_name(config.name)  # names built by model_copy (a grid's) skip the config's own check
            name = protocol.reserve(self.checkpoints, config.name) if rename else protocol.claim(self.checkpoints, config.name)
            config = config.model_copy(update={"name": name})
            self._write_request(
                name, {"status": "queued", "config": config.model_dump(mode="json"), "created": iso_time(time.time())}
            )
            names.append(name)
        return names

    def start(self, configs: Iterable[RunConfig], parallel: int | None = None, device: str = "auto") -> list[str]:
        """Queue the runs and start a detached sweep runner for them; return at once with their names."""
        names = self.queue(configs)
        if names:
            self.launch_runner(names, parallel, device)
        return names

    def launch_runner(
        self, names: list[str], parallel: int | None, device: str, stack: bool | None = None, epochs: int | None = None
    ) -> None:
        """``python -m engine.jobs.controller`` in its own session: it outlives this process and its terminal."""
        stacking = [] if stack is None else ["--stack" if stack else "--no-stack"]
        command = [
            sys.executable,
            "-m",
            "engine.jobs.controller",
            "--checkpoints",
            str(self.checkpoints),
            "--device",
            device,
            "--parallel",
            str(parallel or "auto"),
            *stacking,
            *(["--epochs", str(epochs)] if epochs is not None else []),
            *self.executor.options(),
            *names,
        ]
        self.reap()
        self._children.append(spawn_detached(command, self.checkpoints / names[0] / protocol.RUNNER_LOG_FILE))

    def plan_jobs(self, names: list[str], stack: bool, device: str) -> list[tuple[str, ...]]:
        """The trainer jobs for ``names``: with ``stack``, the queued runs that can train as one model grouped
        (:func:`engine.training.stacked.stack_groups`, within half the first device's free memory); every other run alone."""
        if not stack:
            return [(name,) for name in names]
        from engine.training.stacked import default_memory_budget, stack_groups

        queued = {}
        for name in names:
            config = None
            if not (self.checkpoints / name / protocol.RECORD_FILE).exists():
                config = request_config(read_request(self.checkpoints / name))
            if config is not None:
                queued[name] = config.model_copy(update={"name": name})
        groups = stack_groups(list(queued.values()), default_memory_budget(parse_devices(device, cuda_devices())[0]))
        grouped = {group[0].name: tuple(config.name for config in group) for group in groups}
        return [grouped.get(name, (name,)) for name in names if name in grouped or name not in queued]

    def run_queue(
        self,
        names: list[str],
        parallel: int | None = None,
        device: str = "auto",
        report: Callable[[str, str, Slot | None], None] | None = None,
        stopping: Callable[[], bool] | None = None,
        stack: bool | None = None,
        cpus: int | None = None,
        epochs: int | None = None,
    ) -> dict[str, protocol.Status | None]:
        """The sweep runner: start the queued ``names`` in turn, at most ``len(slots)`` jobs at once; wait for all to end.

        ``report(name, status, slot)`` hears each start and end; once ``stopping()`` is true every run
        is asked to stop (the training ones save a checkpoint, the waiting ones do not start).
        ``stack``: train runs that can stack as one model (None: :func:`should_stack` decides);
        ``cpus``: the cores the runs share (default: all of this machine's, or the cluster's);
        ``epochs``: saved runs train on to this many epochs in all.
        """
        try:
            stacked = should_stack(stack, self.executor.slots(device, parallel, len(names), cpus)[0].device)
            jobs = self.plan_jobs(names, stacked, device)
            slots = self.executor.slots(device, parallel, len(jobs), cpus)
        except UserError as error:
            for name in names:
                request = read_request(self.checkpoints / name)
                if request is not None:
                    self._write_request(name, {**request, "status": "failed", "message": str(error)})
            raise
        for name in names:
            request = read_request(self.checkpoints / name)
            if request is not None and request.get("status") == "queued":
                self._write_request(name, request)  # this process owns the queue from here on
        running: dict[Job, tuple[tuple[str, ...], Slot]] = {}
        pending, free = deque(jobs), list(slots)
        stop_sent = False
        while pending or running:
            if stopping is not None and stopping() and not stop_sent:
                stop_sent = True
                for name in [name for job in [*pending, *(job for job, _ in running.values())] for name in job]:
                    protocol.request_stop(self.checkpoints / name)
            while pending and free:
                job_names = tuple(name for name in pending.popleft() if not self._cancelled(name, report))
                if not job_names:
                    continue
                slot = free.pop(0)
                spec = JobSpec(job_names, self.checkpoints, slot.device, slot.threads, stacked=len(job_names) > 1, epochs=epochs)
                running[self.executor.launch(spec)] = (job_names, slot)
                for name in job_names:
                    if report:
                        report(name, "training", slot)
            time.sleep(POLL_S)
            for job, (job_names, slot) in list(running.items()):
                if job.poll() is not None:
                    del running[job]
                    free.append(slot)
                    for name in job_names:
                        if report:
                            report(name, self.runs.view(name).status or "failed", slot)
        return {name: self.runs.view(name).status for name in names}

    def _cancelled(self, name: str, report: Callable[[str, str, Slot | None], None] | None) -> bool:
        """A queued run asked to stop before its job started: marked stopped, not started."""
        if not protocol.stop_requested(self.checkpoints / name):
            return False
        self._cancel(name)
        if report:
            report(name, "stopped", None)
        return True

    def _cancel(self, name: str) -> None:
        """A queued run asked to stop before it started: it stays, ``stopped``, resumable (it would start afresh)."""
        folder = self.checkpoints / name
        request = read_request(folder)
        if request is not None:
            request["status"] = "stopped"
            self._write_request(name, request)
        protocol.clear_stop(folder)

    def _write_request(self, name: str, request: dict[str, Any]) -> None:
        request["owner"] = {"pid": os.getpid(), "host": protocol.HOST}
        atomic_write(self.checkpoints / name / protocol.REQUEST_FILE, json.dumps(request).encode())

    # Stop and resume

    def stop(self, name: str) -> str:
        """Ask a training or queued run to stop (through its folder); the sentence saying what will happen."""
        view = self.runs.known(name)
        if view.status == "training":
            protocol.request_stop(self.checkpoints / name)
            return f"Run {name!r} stops after its current batch and saves a checkpoint ({view.trainer})."
        if view.status == "queued":
            protocol.request_stop(self.checkpoints / name)
            return f"Run {name!r} will not start; it stays as stopped, and resuming it starts it."
        raise UserError(f"Run {name!r} is {view.status}, not training or queued; there is nothing to stop.")

    def resume(self, name: str, device: str = "auto") -> str:
        """Start a stopped, interrupted, diverged or failed run again, detached, from its last checkpoint."""
        view = self.runs.known(name)
        if view.status not in protocol.RESUMABLE:
            raise UserError(f"Run {name!r} is already {view.status}.")
        if view.status == "finished":
            raise UserError(
                f"Run {name!r} finished all its epochs; 'lm-explorer train --resume {name} --epochs N' trains it further."
            )
        return self._relaunch(name, view, device)

    def train_further(self, name: str, more: int, device: str = "auto") -> str:
        """Train a saved run that is not alive ``more`` epochs past its planned end, detached, from its last checkpoint.

        Its epochs become planned + ``more``: what ``lm-explorer train --resume NAME --epochs TOTAL`` does in the
        foreground (there ``--epochs`` is the new total).
        """
        view = self.runs.known(name)
        if view.status not in protocol.RESUMABLE:
            raise UserError(f"Run {name!r} is {view.status}; stop it first (x in the app), then give it more epochs.")
        if view.record is None:
            raise UserError(f"Run {name!r} never saved a checkpoint, so there is nothing to train further; r starts it.")
        from engine.config.settings import setting

        planned = view.record.config.train.epochs
        ceiling = setting("train.epochs").bounds[1][0]
        assert ceiling is not None, "train.epochs has an upper bound"
        most = int(ceiling) - planned
        if not 1 <= more <= most:
            raise UserError(
                f"More epochs must be a whole number from 1 to {most} (run {name!r} plans {planned} of at most "
                f"{planned + most}), not {more}."
            )
        return self._relaunch(name, view, device, epochs=planned + more)

    def _relaunch(self, name: str, view: RunView, device: str, epochs: int | None = None) -> str:
        """Queue a saved (or once queued) run again and start its trainer, detached; ``epochs``: its new total."""
        if view.record is None and request_config(read_request(self.checkpoints / name)) is None:
            raise UserError(f"Run {name!r} never saved a checkpoint and holds no queued config, so it cannot be resumed.")
        self.requeue(name)
        device = device if device != "auto" or view.config is None else view.config.train.device
        if self.executor.outlives_caller:
            slot = self.executor.slots(device, 1, 1)[0]
            self.executor.launch(JobSpec((name,), self.checkpoints, slot.device, slot.threads, epochs=epochs))
            where = slot.device
        else:  # its jobs end with the process that launched them: a detached runner launches it
            self.launch_runner([name], 1, device, epochs=epochs)
            where = "the cluster"
        if epochs is not None:
            return f"Run {name!r} trains on to epoch {epochs} on {where}."
        return f"Run {name!r} resumes on {where}."

    def requeue(self, name: str) -> None:
        """Mark a run that is not alive queued again (by this process), its stop request cleared."""
        folder = self.checkpoints / name
        request = read_request(folder) or {}
        protocol.clear_stop(folder)
        request.update(status="queued", message=None)
        self._write_request(name, request)

    def orphans(self) -> list[str]:
        """Runs whose runner or trainer died: queued ones never started and interrupted ones (oldest first)."""
        return [view.name for view in reversed(self.runs.views()) if view.status == "interrupted"]

    def resume_queue(
        self,
        parallel: int | None = None,
        device: str = "auto",
        report: Callable[[str, str, Slot | None], None] | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> dict[str, protocol.Status | None]:
        """The sweep runner for :meth:`orphans`: each is queued again by this process and started (or resumed) in turn."""
        names = self.orphans()
        for name in names:
            self.requeue(name)
        return self.run_queue(names, parallel, device, report, stopping)

    def reap(self) -> None:
        """Collect the detached sweep runners this process started that have ended, so none lingers as a zombie."""
        self._children = [child for child in self._children if child.poll() is None]


def main(argv: list[str] | None = None) -> int:
    """The detached sweep runner: ``python -m engine.jobs.controller --checkpoints DIR [--parallel N] [--device D]
    [--executor ray --address A] RUN…``."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.jobs.controller", description="Start queued runs in turn (a detached sweep runner)."
    )
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--parallel", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--stack", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--epochs", type=int, help="saved runs train on to this many epochs in all")
    add_executor_options(parser)
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    stop: list[int] = []
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    try:
        statuses = Controller(args.checkpoints, executor_for(args.executor, args.address)).run_queue(
            args.runs,
            parse_parallel(args.parallel),
            args.device,
            report=lambda name, status, slot: print(f"{name}: {status}", flush=True),
            stopping=lambda: bool(stop),
            stack=args.stack,
            epochs=args.epochs,
        )
    except UserError as error:
        print(f"error: {error}", flush=True)
        return 2
    return 0 if all(status == "finished" for status in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
