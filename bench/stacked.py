"""Measure 9, stacked sweeps: N weights trained as one stack (:mod:`engine.training.stacked`) against solo runs.

- **W1**, the ``paper`` preset, a 4-weight KL sweep (weights 1e-5, 1e-3, 0.1, 10): the stack's
  wall time against one solo run's (the median of the four) and against the four run one after
  another (their sum). The four solo runs and the stack advance in turn, an event at a time, so
  they share the machine's load; only the time spent inside each trainer counts. Target: the
  stack ≤ 2.5× one run.
- **W2**, document batching, the same 4 weights: the stack against one solo run (weight 10),
  interleaved the same way. Target ≤ 3×.
- **W2 on CUDA**, the ``paper`` preset (prefix batching, the study's sweep): the second epoch's
  wall time (the first pays compilation and warm-up) of stacks of 8 and 16 KL weights against one
  solo run's second epoch. Targets ≤ 1.5× and ≤ 2× (:data:`GPU_TARGETS`). CUDA only: on a CPU a
  stack costs about its size (above).
- **W2**, peak RSS of a 4-member stack against one solo run, each its own process
  (``python -m bench.stacked``, through :mod:`bench.peak_rss`): the ``paper`` preset for its
  first :data:`PEAK_STEPS` batches, and document batching for a whole epoch (its validation
  batches are the largest tensors a run makes). Target ≤ 2×.

Ratios are stack ÷ baseline, so below the target is better. ``python -m bench.stacked DATA
CHECKPOINTS MEMBERS BATCHING STEPS`` (STEPS 0: a whole epoch) is the process the memory rows measure.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from bench.context import Bench
from bench.memory import peak_rss
from bench.table import Row, mib, seconds, skipped
from bench.timing import interleave
from bench.workloads import DOCUMENT_BATCHING, STUDY_OBJECTIVE, Workload
from engine.config.models import RunConfig
from engine.config.presets import build_run_config
from engine.training.events import EpochMetrics, Event, RunDiverged, RunFailed, StepMetrics
from engine.training.stacked import StackedTrainer
from engine.training.trainer import Trainer, resolve_device

MEASURE = "10 stacked sweep"
WEIGHTS = (1e-5, 1e-3, 0.1, 10.0)
PEAK_STEPS = {"prefix": 100, "document": 0}
TARGETS = {"W1": 2.5, "W2": 3.0, "memory": 2.0}
GPU_TARGETS = {8: 1.5, 16: 2.0}
GPU_WEIGHTS = tuple(10.0 ** (half_decade / 2) for half_decade in range(-12, 4))  # sixteen KL weights, 1e-6 … 31.6


class TimedTrainer:
    """A trainer's events, one per iteration; ``seconds`` sums the time spent inside the trainer.

    ``max_steps``: ask the trainer to stop once a live-metrics window reaches that step.
    """

    def __init__(self, trainer: Trainer | StackedTrainer, max_steps: int | None = None):
        self.trainer, self.max_steps, self.seconds = trainer, max_steps, 0.0

    def __iter__(self) -> Iterator[None]:
        events = self.trainer.events()
        while True:
            start = time.perf_counter()
            event: Event | None = next(events, None)
            self.seconds += time.perf_counter() - start
            if event is None:
                return
            if isinstance(event, (RunDiverged, RunFailed)):
                raise RuntimeError(f"run {event.run_name} ended as {type(event).__name__}: {event.message}")
            if isinstance(event, StepMetrics) and self.max_steps is not None and event.step >= self.max_steps:
                self.trainer.stop()
            yield


def measure(bench: Bench) -> list[Row]:
    rows = []
    for key in ("W1", "W2"):
        workload = bench.workloads[key]
        if not workload.available:
            rows.append(skipped(key, MEASURE, workload.missing))
            continue
        rows.extend(_w1_rows(bench, workload) if key == "W1" else _w2_rows(bench, workload))
    workload = bench.workloads["W2"]
    if workload.available and resolve_device(bench.device).type == "cuda":
        rows.extend(_gpu_scaling_rows(bench, workload))
    return rows


def _configs(bench: Bench, workload: Workload, label: str, extra: dict) -> list[RunConfig]:
    return [
        workload.config(bench.run_name(f"{workload.key}-{label}-{i}"), bench.device, {"objective.weight": weight, **extra})
        for i, weight in enumerate(WEIGHTS)
    ]


def _w1_rows(bench: Bench, workload: Workload) -> list[Row]:
    epochs = bench.pick(1, 5)
    corpus = workload.corpus()
    solos = [
        TimedTrainer(Trainer.new(config, bench.checkpoints, corpus))
        for config in _configs(bench, workload, "solo", {"train.epochs": epochs})
    ]
    stack = TimedTrainer(
        StackedTrainer.new(_configs(bench, workload, "stack", {"train.epochs": epochs}), bench.checkpoints, corpus)
    )
    interleave(*solos, stack)
    one, sequential = statistics.median(solo.seconds for solo in solos), sum(solo.seconds for solo in solos)
    what = f"{MEASURE}: {len(WEIGHTS)} KL weights, paper preset, {epochs} epoch(s)"
    ratio = stack.seconds / one
    return [
        Row(
            "W1",
            f"{what}, stack vs one run",
            seconds(stack.seconds),
            f"{seconds(one)} (median solo run)",
            ratio,
            f"≤ {TARGETS['W1']:g}×",
            ratio <= TARGETS["W1"],
        ),
        Row(
            "W1",
            f"{what}, stack vs sequential",
            seconds(stack.seconds),
            f"{seconds(sequential)} (4 solo runs)",
            stack.seconds / sequential,
        ),
    ]


def _w2_rows(bench: Bench, workload: Workload) -> list[Row]:
    corpus = workload.corpus()
    extra = {**DOCUMENT_BATCHING, "train.epochs": 1}
    max_steps = bench.pick(30, None)
    solo = TimedTrainer(Trainer.new(_configs(bench, workload, "solo", extra)[-1], bench.checkpoints, corpus), max_steps)
    stack = TimedTrainer(StackedTrainer.new(_configs(bench, workload, "stack", extra), bench.checkpoints, corpus), max_steps)
    interleave(solo, stack)
    span = f"first {max_steps} batches" if max_steps else "1 epoch"
    ratio = stack.seconds / solo.seconds
    rows = [
        Row(
            "W2",
            f"{MEASURE}: {len(WEIGHTS)} KL weights, document batching, {span}, stack vs one run",
            seconds(stack.seconds),
            seconds(solo.seconds),
            ratio,
            f"≤ {TARGETS['W2']:g}×",
            ratio <= TARGETS["W2"],
        )
    ]
    if bench.quick:
        return [*rows, skipped("W2", f"{MEASURE}: peak RSS", "full run only (four processes of W2)")]
    for batching, steps in PEAK_STEPS.items():
        peaks = {
            members: peak_rss(
                [
                    sys.executable,
                    "-m",
                    "bench.stacked",
                    str(bench.data_dir),
                    str(bench.scratch / "stacked-peak"),
                    str(members),
                    batching,
                    str(steps),
                ]
            )
            for members in (1, len(WEIGHTS))
        }
        ratio = peaks[len(WEIGHTS)] / peaks[1]
        span = f"{steps} batches" if steps else "1 epoch"
        rows.append(
            Row(
                "W2",
                f"{MEASURE}: peak RSS, {len(WEIGHTS)}-member stack vs one run ({batching} batching, {span})",
                mib(peaks[len(WEIGHTS)]),
                mib(peaks[1]),
                ratio,
                f"≤ {TARGETS['memory']:g}×",
                ratio <= TARGETS["memory"],
            )
        )
    return rows


def _gpu_scaling_rows(bench: Bench, workload: Workload) -> list[Row]:
    corpus = workload.corpus()
    configs = [
        workload.config(bench.run_name(f"W2-gpu-{i}"), bench.device, {"objective.weight": weight, "train.epochs": 2})
        for i, weight in enumerate(GPU_WEIGHTS)
    ]
    one = second_epoch_seconds(Trainer.new(configs[0], bench.checkpoints, corpus))
    rows = []
    for members, target in GPU_TARGETS.items():
        stacked = [config.model_copy(update={"name": f"{config.name}-of-{members}"}) for config in configs[:members]]
        seconds_taken = second_epoch_seconds(StackedTrainer.new(stacked, bench.checkpoints, corpus))
        ratio = seconds_taken / one
        rows.append(
            Row(
                "W2",
                f"{MEASURE}: {members} KL weights stacked on CUDA, paper preset, 2nd epoch, stack vs one run",
                seconds(seconds_taken),
                f"{seconds(one)} (one run)",
                ratio,
                f"≤ {target:g}×",
                ratio <= target,
            )
        )
    return rows


def second_epoch_seconds(trainer: Trainer | StackedTrainer) -> float:
    """Wall time from a trainer's first end-of-epoch metrics to its second (epoch 2: training, validation, a save)."""
    marks: dict[int, float] = {}
    for event in trainer.events():
        if isinstance(event, (RunDiverged, RunFailed)):
            raise RuntimeError(f"run {event.run_name} ended as {type(event).__name__}: {event.message}")
        if isinstance(event, EpochMetrics) and event.epoch not in marks:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            marks[event.epoch] = time.perf_counter()
    return marks[2] - marks[1]


def train_for_peak(data_dir: Path, checkpoints: Path, members: int, batching: str, steps: int) -> None:
    """Train W2 (all nine files) for ``steps`` batches (0: one epoch): one solo run when ``members`` is 1, else a stack of that many weights."""
    overrides = {"corpus.paths": [str(data_dir)], "train.epochs": 1, **STUDY_OBJECTIVE}
    if batching == "document":
        overrides.update(DOCUMENT_BATCHING)
    stamp = f"{members}-{batching}-{time.time_ns()}"
    configs = [
        build_run_config(f"peak-{stamp}-{i}", "paper", {**overrides, "objective.weight": weight})
        for i, weight in enumerate(WEIGHTS[:members])
    ]
    trainer = Trainer.new(configs[0], checkpoints) if members == 1 else StackedTrainer.new(configs, checkpoints)
    for _ in TimedTrainer(trainer, max_steps=steps or None):
        pass


if __name__ == "__main__":
    data, where, count, how, limit = sys.argv[1:6]
    train_for_peak(Path(data), Path(where), int(count), how, int(limit))
