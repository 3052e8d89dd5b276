"""The typed events a training run reports, in the order a run emits them.

``RunStarted`` → (``StepMetrics``)* → ``EpochMetrics`` → ``CheckpointSaved`` → … → exactly one of
``RunFinished``, ``RunStopped``, ``RunDiverged`` or ``RunFailed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.config.models import RunConfig
from engine.runs.protocol import Status


@dataclass(frozen=True)
class RunStarted:
    run_name: str
    config: RunConfig
    device: str
    vocab_size: int
    train_pairs: int
    val_pairs: int
    steps_per_epoch: int
    total_steps: int
    start_step: int
    definitions: dict[str, str]
    fused_head: str = "plain torch"  # how the output head's element-wise math runs (engine.objective.head.Fusion)


@dataclass(frozen=True)
class StepMetrics:
    """Training metrics over the last window of batches; ``epoch`` is fractional (steps / steps per epoch)."""

    run_name: str
    step: int
    total_steps: int
    epoch: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class EpochMetrics:
    """End-of-epoch metrics: ``train_*`` are running means over the epoch, the rest on validation."""

    run_name: str
    epoch: int
    step: int
    total_steps: int
    metrics: dict[str, float]
    definitions: dict[str, str]
    collapsed: bool


@dataclass(frozen=True)
class CheckpointSaved:
    run_name: str
    path: Path
    epoch: float


@dataclass(frozen=True)
class RunFinished:
    run_name: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class RunStopped:
    run_name: str
    step: int
    epoch: float


@dataclass(frozen=True)
class RunDiverged:
    run_name: str
    step: int
    message: str


@dataclass(frozen=True)
class RunFailed:
    """A run that could not go on; ``user_error`` tells a fixable input from a fault in lm-explorer."""

    run_name: str
    message: str
    user_error: bool
    details: str = field(default="", repr=False)


Event = RunStarted | StepMetrics | EpochMetrics | CheckpointSaved | RunFinished | RunStopped | RunDiverged | RunFailed
FINAL_EVENTS = (RunFinished, RunStopped, RunDiverged, RunFailed)


def final_status(event: Event) -> Status:
    """The status a run ends in after its final event."""
    if isinstance(event, RunFinished):
        return "finished"
    if isinstance(event, RunStopped):
        return "stopped"
    if isinstance(event, RunDiverged):
        return "diverged"
    if isinstance(event, RunFailed):
        return "failed"
    raise ValueError(f"{type(event).__name__} is not a final event")
