"""Timed training through the engine's :class:`~engine.training.trainer.Trainer`, read off its event stream.

Runs compared with each other advance in turn, one live-metrics window (``train.log_every``
batches) at a time (:func:`interleave`): on a shared machine the load changes from one minute
to the next, and alternating every second or so exposes the runs compared to the same
conditions. Only the time spent inside a run's own iteration counts towards it.

An epoch's time runs from the end of the previous epoch (or ``RunStarted``, after the initial
checkpoint) to its ``EpochMetrics``: training steps, live metrics, validation and the epoch-end
checkpoint. Its *train phase* ends at the epoch's last ``StepMetrics``, before validation. A
partial run (``max_steps``, a multiple of the live-metrics window ``train.log_every``) is timed
to the ``StepMetrics`` of that step and then stopped.

Throughput is training pairs per second: pairs are (prefix → next word) predictions, the same
count under either batching, so rates compare across batchings.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.config.models import RunConfig
from engine.lm.batching import DocumentBatches, PrefixBatches
from engine.lm.corpus import Corpus
from engine.training.events import EpochMetrics, RunDiverged, RunFailed, RunStarted, StepMetrics
from engine.training.trainer import Trainer, epoch_seed, make_split


@dataclass
class Repetition:
    """One timed stretch of training: an epoch, or the first batches of one."""

    pairs: int
    seconds: float
    train_seconds: float
    val_loss: float | None = None

    @property
    def rate(self) -> float:
        return self.pairs / self.seconds

    @property
    def train_rate(self) -> float:
        return self.pairs / self.train_seconds


@dataclass
class TrainerTiming:
    """Repetitions of one configuration; ``partial`` when they are the first ``steps`` batches of an epoch."""

    config: RunConfig
    train_pairs: int
    steps_per_epoch: int
    reps: list[Repetition] = field(default_factory=list)
    steps: int | None = None
    fused_head: str = ""

    @property
    def partial(self) -> bool:
        return self.steps is not None

    @property
    def rate(self) -> float:
        """Median training pairs per second over whole repetitions (validation and checkpoint included)."""
        return statistics.median(rep.rate for rep in self.reps)

    @property
    def train_rate(self) -> float:
        """Median training pairs per second of the train phase alone."""
        return statistics.median(rep.train_rate for rep in self.reps)

    @property
    def epoch_seconds(self) -> float:
        """Median epoch time; for a partial run, the train phase extrapolated to a whole epoch."""
        return self.train_pairs / self.rate

    @property
    def val_loss(self) -> float | None:
        return self.reps[-1].val_loss

    @property
    def label(self) -> str:
        return f"first {self.steps} batches, epoch est." if self.partial else f"median of {len(self.reps)} epochs"


class TrainedRun:
    """Train ``config`` through the engine; iterating advances it one live-metrics window at a time.

    Its :class:`TrainerTiming` fills with a :class:`Repetition` per epoch (or one for ``max_steps``).
    """

    def __init__(self, config: RunConfig, corpus: Corpus, checkpoints: Path, max_steps: int | None = None):
        self.config, self.corpus, self.checkpoints, self.max_steps = config, corpus, checkpoints, max_steps
        self.timing: TrainerTiming | None = None

    def __iter__(self) -> Iterator[None]:
        trainer = Trainer.new(self.config, self.checkpoints, self.corpus)
        elapsed = train_elapsed = 0.0
        resumed = time.perf_counter()
        for event in trainer.events():
            elapsed += time.perf_counter() - resumed
            if isinstance(event, RunStarted):
                self.timing = TrainerTiming(
                    self.config, event.train_pairs, event.steps_per_epoch, steps=self.max_steps, fused_head=event.fused_head
                )
                elapsed = 0.0
            elif isinstance(event, StepMetrics):
                if event.step == self.max_steps:
                    pairs = first_batches_pairs(self.config, self.corpus, self.max_steps)
                    self.timing.reps.append(Repetition(pairs, elapsed, elapsed))
                    trainer.stop()
                elif event.step % self.timing.steps_per_epoch == 0:
                    train_elapsed = elapsed
            elif isinstance(event, EpochMetrics):
                self.timing.reps.append(Repetition(self.timing.train_pairs, elapsed, train_elapsed, event.metrics["val_loss"]))
                elapsed = 0.0
            elif isinstance(event, (RunFailed, RunDiverged)):
                raise RuntimeError(f"run {self.config.name} ended as {type(event).__name__}: {event.message}")
            yield
            resumed = time.perf_counter()


def interleave(*runs: Iterable[None], alongside: Iterable[None] | None = None) -> None:
    """Advance the runs a step each in turn until all are done, so that they share the machine's ups and downs.

    ``alongside`` (endless, such as a :class:`MatmulRun`) takes a step after each round while runs remain.
    """
    active = [iter(run) for run in runs]
    companion = iter(alongside) if alongside is not None else None
    while active:
        for iterator in list(active):
            if next(iterator, StopIteration) is StopIteration:
                active.remove(iterator)
        if companion is not None:
            next(companion)


class MatmulRun:
    """``torch.matmul`` of ``(rows × inner) @ (inner × cols)`` in float32 on ``device``, a burst per step, endlessly.

    ``rate`` is the FLOP/s over all bursts (2 · rows · inner · cols per product); a device
    synchronization closes each burst.
    """

    BURST_SECONDS = 0.02

    def __init__(self, rows: int, inner: int, cols: int, device: torch.device):
        self.shape, self.device = (rows, inner, cols), device
        self.flops = self.seconds = 0.0

    @property
    def rate(self) -> float:
        return self.flops / self.seconds

    def __iter__(self) -> Iterator[None]:
        rows, inner, cols = self.shape
        a, b = torch.randn(rows, inner, device=self.device), torch.randn(inner, cols, device=self.device)
        torch.matmul(a, b)
        burst = 1
        while True:
            synchronize(self.device)
            start = time.perf_counter()
            for _ in range(burst):
                torch.matmul(a, b)
            synchronize(self.device)
            seconds = time.perf_counter() - start
            self.flops += 2.0 * rows * inner * cols * burst
            self.seconds += seconds
            burst = max(1, round(burst * self.BURST_SECONDS / max(seconds, 1e-6)))
            yield


def paired_medians(measured: Callable[[], float], baseline: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Medians of the seconds ``measured()`` and ``baseline()`` return, calling them in turn, after one unused call of each."""
    measured(), baseline()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        times[0].append(measured())
        times[1].append(baseline())
    return statistics.median(times[0]), statistics.median(times[1])


def timed(work: Callable[[], object]) -> Callable[[], float]:
    """``work`` as a callable that returns the seconds it took."""

    def run() -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    return run


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a time read next includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def first_batches(config: RunConfig, corpus: Corpus, steps: int | None = None) -> tuple[DocumentBatches | PrefixBatches, list]:
    """The training batches and the first epoch's batches (its first ``steps``, if given) in the trainer's order."""
    batches = make_split(config, corpus).train
    return batches, batches.epoch(epoch_seed(config.train.seed, 0))[:steps]


def first_batches_pairs(config: RunConfig, corpus: Corpus, steps: int) -> int:
    """Training pairs in the first ``steps`` batches of the first epoch, in the trainer's order."""
    batches, order = first_batches(config, corpus, steps)
    return sum(batch_pairs(batches, members) for members in order)


def batch_pairs(batches: DocumentBatches | PrefixBatches, members) -> int:
    """Scored positions in one batch: every next word of its documents, or one per prefix row."""
    if isinstance(batches, DocumentBatches):
        return sum(len(batches.docs[i]) - 1 for i in members)
    return len(members)
