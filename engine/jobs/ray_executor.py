"""Trainer commands as Ray tasks: each job (one run, or one stacked group) is a task on a node of a Ray cluster
whose nodes all mount the same checkpoints folder at the same path.

The task (:func:`train_on_node`) runs the ordinary trainer command (:mod:`engine.jobs.worker`) as a child of its
Ray worker, tied to it (:func:`engine.jobs.executor.die_with_parent`). The run folder stays the only record: the
trainer writes status, lock and heartbeat there and reads stop requests from there, exactly as locally. When a
node dies its trainers die with it, so their runs read ``interrupted`` (the lock is let go; from another host the
beat goes stale), and Ray runs the task again on another node (``NODE_RETRIES``): the same command resumes each
run from its last checkpoint, whose later metrics lines it replaces as a local resume does. A node that does not
see the folder ends the job at once with one sentence (:func:`unseen_folder`), which the runner, which does see
the folder, writes into the runs' requests; so does a task that raised (:class:`ray.exceptions.RayTaskError`: a fault
of the job, which Ray does not retry): its queued runs read ``failed`` with the exception, not lost with a node.

A task is owned by the process that submitted it (Ray ends it when that process ends), so jobs are submitted by a
sweep runner (``sweep`` in the foreground, or detached), never by the app itself.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from engine.errors import UserError
from engine.exit_codes import EXIT_FAILED, EXIT_USER_ERROR
from engine.jobs.executor import JobSpec, spawn_detached
from engine.jobs.placement import CPU_THREADS_PER_RUN, Slot
from engine.jobs.worker import refused
from engine.runs import protocol
from engine.safe_io import append_text

NODE_RETRIES = 3
"""How often Ray runs a job again after the node (or worker) running it died."""


def unseen_folder(spec: JobSpec) -> str | None:
    """The sentence saying this node does not see the job's run folders (the checkpoints folder is not shared), else None."""
    for name in spec.runs:
        folder = spec.checkpoints / name
        if not (folder / protocol.RECORD_FILE).exists() and not (folder / protocol.REQUEST_FILE).exists():
            return (
                f"Node {protocol.HOST} does not see run {name!r} in {str(spec.checkpoints)!r}: every Ray node must mount "
                "the same checkpoints folder at the same path (NFS or similar)."
            )
    return None


def wait_for_lost_writers(spec: JobSpec, patience: float = protocol.STALE_AFTER_S + protocol.HEARTBEAT_S) -> None:
    """Before a retry: wait (at most ``patience`` s) until the trainers a lost node ran read dead, so the resume is not
    refused as a second writer. On their own host their lock goes with them; from another host their beat goes stale."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and any(protocol.liveness(spec.checkpoints / name).alive for name in spec.runs):
        time.sleep(protocol.STOP_POLL_S)


def train_on_node(spec: JobSpec) -> tuple[int, str | None]:
    """The Ray task: the trainer command for ``spec`` on this node; its exit code, and the sentence when it could not start."""
    import ray

    problem = unseen_folder(spec)
    if problem is not None:
        return EXIT_USER_ERROR, problem
    wait_for_lost_writers(spec)
    node = ray.get_runtime_context().get_node_id()
    append_text(spec.log, protocol.protocol_file(spec.log), f"ray: job {' '.join(spec.runs)} on node {node} ({protocol.HOST})\n")
    return spawn_detached(spec.command(), spec.log, spec.threads, tied=True).wait(), None


@functools.cache
def _remote_task() -> Any:
    import ray

    return ray.remote(train_on_node)


@dataclass(eq=False)
class RayJob:
    """A job submitted as a Ray task; :meth:`poll` never blocks."""

    spec: JobSpec
    ref: Any  # ray.ObjectRef of train_on_node's result
    _code: int | None = None

    def poll(self) -> int | None:
        if self._code is None:
            import ray

            ready, _ = ray.wait([self.ref], timeout=0)
            if ready:
                self._code = self._outcome()
        return self._code

    def _outcome(self) -> int:
        import ray

        try:
            code, problem = ray.get(self.ref)
        except ray.exceptions.RayTaskError as error:  # the task itself raised: no node was lost, and Ray does not retry it
            problem = (
                f"Its Ray task raised {type(error.cause).__name__}: {error.cause} (a task that raises "
                "is not run again, unlike one whose node was lost)"
            )
            for name in self.spec.runs:
                refused(self.spec.checkpoints / name, problem)
            return EXIT_FAILED
        except ray.exceptions.RayError as error:  # its retries are spent: every node it ran on was lost
            append_text(
                self.spec.log,
                protocol.protocol_file(self.spec.log),
                f"ray: the job was lost with its node {NODE_RETRIES + 1} times ({type(error).__name__}); its runs read "
                "interrupted, and 'lm-explorer sweep --resume-queue' starts them again\n",
            )
            return EXIT_FAILED
        if problem is not None:
            for name in self.spec.runs:
                refused(self.spec.checkpoints / name, problem)
        return int(code)


class RayExecutor:
    """Jobs as Ray tasks on the cluster at ``address`` (``auto``: the one ``ray start`` runs on this machine)."""

    outlives_caller = False

    def __init__(self, address: str):
        self.address = address

    def options(self) -> list[str]:
        return ["--executor", "ray", "--address", self.address]

    def _connect(self) -> Any:
        import ray

        if not ray.is_initialized():
            try:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise UserError(
                    f"Cannot reach a Ray cluster at --address {self.address} ({str(error).splitlines()[0]}); start one "
                    "with 'ray start --head', or give its head's HOST:PORT."
                ) from None
        return ray

    def slots(self, device: str, parallel: int | None, jobs: int, cpus: int | None = None) -> list[Slot]:
        """One slot per GPU of the cluster (a job asks Ray for one), or per ``CPU_THREADS_PER_RUN`` of its CPUs."""
        resources = self._connect().cluster_resources()
        gpus, cores = int(resources.get("GPU", 0)), cpus or int(resources.get("CPU", 1))
        if device != "cpu" and gpus:
            where, fits = "cuda", gpus  # Ray shows a task only its own GPU, as cuda:0
        elif device in ("auto", "cpu"):
            where, fits = "cpu", max(1, cores // CPU_THREADS_PER_RUN)
        else:
            raise UserError(
                f"--device {device} asks for a GPU, and the Ray cluster at {self.address} has none; give --device cpu."
            )
        return [Slot(where, CPU_THREADS_PER_RUN)] * max(1, min(parallel or fits, jobs))

    def launch(self, spec: JobSpec) -> RayJob:
        self._connect()
        spec = replace(spec, checkpoints=spec.checkpoints.resolve())  # the same path on every node
        task = _remote_task().options(
            num_cpus=spec.threads,
            num_gpus=int(spec.device.startswith("cuda")),
            max_retries=NODE_RETRIES,
            name=f"lm-explorer {' '.join(spec.runs)}",
        )
        return RayJob(spec, task.remote(spec))
