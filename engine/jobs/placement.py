"""Placement: where a sweep's jobs run (a device and a share of the CPU threads each), and whether its runs stack.

Local (:func:`plan_slots`): on CUDA every job of a sweep at once, spread over the devices given
(``cuda:0,cuda:1``) or found (``auto``); on CPU one job per ``CPU_THREADS_PER_RUN`` cores, so runs
never oversubscribe them. A cluster executor places jobs on its nodes' resources instead
(:meth:`engine.jobs.ray_executor.RayExecutor.slots`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.devices import cuda_devices, parse_devices
from engine.errors import UserError

CPU_THREADS_PER_RUN = 1


@dataclass(frozen=True)
class Slot:
    """Where one trainer runs: a device and the torch CPU threads it may use."""

    device: str
    threads: int


def parse_parallel(text: str | int | None) -> int | None:
    """``auto`` (None) or a whole number ≥ 1."""
    if text is None or text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"--parallel must be auto or a whole number of at least 1, not {text!r}.")
    return value


def should_stack(stack: bool | None, device: str) -> bool:
    """Whether a sweep's runs stack: as asked, else on CUDA only.

    On a CPU a stack of N runs costs about N runs (the recurrent work is compute-bound and the
    ``positions × V`` passes are per member; measured in ``docs/design/stacking.md``), while separate
    runs use the cores side by side; on a launch-bound GPU one stacked model keeps the device busy.
    """
    if stack is not None:
        return stack
    return device != "cpu" and parse_devices(device, cuda_devices()) != ["cpu"]


def plan_slots(
    device: str, parallel: int | None, runs: int, cpus: int | None = None, cuda_count: int | None = None
) -> list[Slot]:
    """The slots a sweep of ``runs`` runs on: as many as run at once, each with its device and threads."""
    cpus = cpus or os.cpu_count() or 1
    if cuda_count is None:
        cuda_count = cuda_devices() if device != "cpu" else 0
    devices = parse_devices(device, cuda_count)
    if parallel is None:
        parallel = runs if devices != ["cpu"] else max(1, cpus // CPU_THREADS_PER_RUN)
    parallel = max(1, min(parallel, runs))
    threads = max(1, cpus // parallel)
    return [Slot(devices[index % len(devices)], threads) for index in range(parallel)]
