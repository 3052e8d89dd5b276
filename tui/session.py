"""What the app knows about each run: status, latest metrics, plot series, color. No drawing here.

A :class:`RunState` is updated from the engine's training events (:meth:`RunState.apply`) or
built from a saved run's record and metric history. The :class:`Session` keeps them in the
order they appeared and hands out colors and short numbers that the runs list, the plot
legends and the generation table share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.config import RunConfig
from engine.events import (
    CheckpointSaved,
    EpochMetrics,
    Event,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepMetrics,
)

STATUSES = ("queued", "training", "finished", "stopped", "diverged", "failed")
PALETTE = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292", "#a1887f", "#90a4ae")

# Series drawn in the plots, by where they come from.
STEP_SERIES = ("train_entropy", "train_kl", "train_loss")  # StepMetrics: rolling training windows
EPOCH_SERIES = ("entropy", "kl", "val_loss")  # EpochMetrics: validation at epoch ends


@dataclass
class RunState:
    """One run as the app shows it.

    ``series`` maps a metric name to its (epoch, value) points; ``checkpoint_version`` grows each
    time a newer checkpoint lands on disk, so the generation table knows when to regenerate.
    """

    name: str
    config: RunConfig
    number: int
    color: str
    status: str = "queued"
    shown: bool = True
    progress: float = 0.0
    epoch: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    message: str | None = None
    checkpoint_version: int = 0
    history_loaded: bool = True

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint_version > 0

    @property
    def status_text(self) -> str:
        """``training 42%`` while training, else the bare status."""
        if self.status == "training":
            return f"training {self.progress:.0%}"
        return self.status

    def apply(self, event: Event) -> None:
        """Fold one training event into the state."""
        if isinstance(event, RunStarted):
            self.status, self.definitions = "training", dict(event.definitions)
            self.progress = event.start_step / max(event.total_steps, 1)
            self.checkpoint_version += 1  # the trainer saves the run before it starts
        elif isinstance(event, StepMetrics):
            self.progress, self.epoch = event.step / max(event.total_steps, 1), event.epoch
            self._add_points(event.epoch, event.metrics, STEP_SERIES)
        elif isinstance(event, EpochMetrics):
            self.progress, self.epoch = event.step / max(event.total_steps, 1), float(event.epoch)
            self.metrics, self.definitions = dict(event.metrics), dict(event.definitions)
            self._add_points(float(event.epoch), event.metrics, EPOCH_SERIES)
        elif isinstance(event, CheckpointSaved):
            self.epoch = event.epoch
            self.checkpoint_version += 1
        elif isinstance(event, RunFinished):
            self.status, self.progress = "finished", 1.0
            self.metrics = dict(event.metrics) or self.metrics
        elif isinstance(event, RunStopped):
            self.status, self.epoch = "stopped", event.epoch
        elif isinstance(event, RunDiverged):
            self.status, self.message = "diverged", event.message
        elif isinstance(event, RunFailed):
            self.status, self.message = "failed", event.message

    def load_history(self, lines: list[dict[str, Any]], definitions: dict[str, str]) -> None:
        """Replace the series with a saved run's ``metrics.jsonl`` lines (kinds ``step`` and ``epoch``)."""
        self.series = {}
        self.definitions = dict(definitions)
        for line in lines:
            names = STEP_SERIES if line.get("kind") == "step" else EPOCH_SERIES if line.get("kind") == "epoch" else ()
            self._add_points(float(line.get("epoch", 0.0)), line, names)
        self.history_loaded = True

    def _add_points(self, epoch: float, metrics: dict[str, Any], names: tuple[str, ...]) -> None:
        for name in names:
            value = metrics.get(name)
            if isinstance(value, (int, float)):
                self.series.setdefault(name, []).append((epoch, float(value)))


def saved_status(status: str) -> str:
    """A saved run's status as this session sees it: one left ``training`` was interrupted, so stopped."""
    return "stopped" if status == "training" else status


class Session:
    """The runs of this session and the saved ones, in order of appearance."""

    def __init__(self) -> None:
        self.runs: dict[str, RunState] = {}
        self._count = 0

    def add(self, name: str, config: RunConfig, **state: Any) -> RunState:
        """A new run with the next number and color."""
        self._count += 1
        number = self._count
        run = RunState(name=name, config=config, number=number, color=PALETTE[(number - 1) % len(PALETTE)], **state)
        self.runs[name] = run
        return run

    def get(self, name: str) -> RunState | None:
        return self.runs.get(name)

    def remove(self, name: str) -> None:
        self.runs.pop(name, None)

    @property
    def shown(self) -> list[RunState]:
        return [run for run in self.runs.values() if run.shown]

    def with_status(self, *statuses: str) -> list[RunState]:
        return [run for run in self.runs.values() if run.status in statuses]
