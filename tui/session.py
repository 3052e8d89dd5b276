"""What the app knows about each run: status, latest metrics, plot series, color. No drawing here.

A :class:`RunState` follows one run folder: :meth:`RunState.observe` takes the engine
controller's view of it (status, trainer, device, progress, saved record) and
:meth:`RunState.add_lines` the lines its trainer appended to ``metrics.jsonl``. Each point of a
series keeps where it was recorded on every x axis the plots offer (:data:`X_AXES`): step, epoch
and training wall time. The
:class:`Session` keeps them in the order they appeared and hands out colors and short numbers
that the runs list, the plot legends and the generation table share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeGuard, get_args

from engine.config.models import RunConfig
from engine.metric_table import METRICS
from engine.runs.metrics_lines import supersedes
from engine.runs.view import RunView

PALETTE = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292", "#a1887f", "#90a4ae")

# Series drawn in the plots, by the kind of metrics line they come from: step lines' training
# windows, epoch lines' validation (an epoch line's own training means are not drawn).
STEP_SERIES = tuple(metric.key for metric in METRICS if metric.source == "training")
EPOCH_SERIES = tuple(metric.key for metric in METRICS if metric.source == "validation")

# The x axes a series can be drawn over: the fields of :class:`Point` that locate it.
XAxis = Literal["epoch", "step", "wall"]
X_AXES: tuple[str, ...] = get_args(XAxis)


class Point(NamedTuple):
    """One value of a series, located on each x axis.

    ``wall``: the line's ``wall_s``, seconds this run has spent training (the engine's
    :class:`engine.training.trainer.WallClock`: summed over its sessions, time while stopped not counted);
    None on lines written before the engine recorded it.
    """

    step: int
    epoch: float
    wall: float | None
    value: float


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class RunState:
    """One run as the app shows it.

    ``series`` maps a metric name to its points, in the order the run recorded them
    (:meth:`points` gives them as (x, value) on one axis); ``pairs_per_s`` is the throughput on
    the latest line that gave one, ``best_val_loss`` the lowest finite validation loss of the lines read
    (the history of a shown run, the summary of a hidden one: :meth:`note_summary`);
    ``checkpoint_version`` grows each time a newer checkpoint lands on disk, so the generation
    table knows when to regenerate. ``epoch_lines`` are the run's epoch lines as its history now stands
    (superseded ones dropped, :func:`engine.runs.metrics_lines.current`), shown or hidden: a seed group's
    row compares its members at an epoch they all finished.
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
    series: dict[str, list[Point]] = field(default_factory=dict)
    pairs_per_s: float | None = None
    best_val_loss: float | None = None
    epoch_lines: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    checkpoint_version: int = 0
    history_loaded: bool = True
    device: str | None = None
    weights_file: str | None = None

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint_version > 0

    @property
    def alive(self) -> bool:
        return self.status in ("queued", "training")

    @property
    def status_text(self) -> str:
        """``training 42 % · cpu`` while training (progress, then the device, kept apart so the share does not read as
        the device's load), else the bare status."""
        if self.status == "training":
            return f"training {self.progress * 100:.0f} %" + (f" · {self.device}" if self.device else "")
        return self.status

    def observe(self, view: RunView) -> None:
        """Take the folder's word for status, progress, device, metrics and the checkpoint; while it trains, its epoch
        is at least its trainer's share of batches done × planned epochs (a hidden run's lines are not read)."""
        self.status = view.status or self.status
        self.device, self.message = view.device, view.message
        record = view.record
        if view.config is not None:
            self.config = view.config
        if record is not None:
            self.metrics = dict(record.metrics) or self.metrics
            if not view.alive:
                self.epoch = record.epoch_progress
            if record.weights_file != self.weights_file:
                self.weights_file = record.weights_file
                self.checkpoint_version += 1
        self.progress = 1.0 if self.status == "finished" else view.progress
        if view.alive and view.total_steps and self.config is not None:  # a hidden run's lines are not followed
            self.epoch = max(self.epoch, view.progress * self.config.train.epochs)

    def add_lines(self, lines: list[dict[str, Any]]) -> None:
        """Fold ``metrics.jsonl`` lines (kinds ``step`` and ``epoch``) into the series.

        A line at a step the series already reached comes from a run resumed from an earlier
        checkpoint (its trainer was killed after writing lines past it): the points it
        supersedes are dropped (:meth:`_rewind`), so every axis stays in the order of the run's
        history, and wall time stays monotone.
        """
        for line in lines:
            kind, epoch, step = line.get("kind"), line.get("epoch", 0.0), line.get("step")
            names = STEP_SERIES if kind == "step" else EPOCH_SERIES if kind == "epoch" else ()
            if not names or not _number(epoch) or not _number(step):
                continue
            self._rewind(int(step), names)
            wall = line.get("wall_s")
            self._add_points(Point(int(step), float(epoch), float(wall) if _number(wall) else None, 0.0), line, names)
            self._note(line)
            self.epoch = max(self.epoch, float(epoch))

    def note_summary(self, lines: list[dict[str, Any]], restart: bool) -> None:
        """New lines of a run whose history is not kept (it is not shown): only what the runs list needs of them.

        ``restart``: the lines are the whole file again (it was replaced), so the best so far is forgotten.
        """
        if restart:
            self.best_val_loss = None
            self.epoch_lines = []
        for line in lines:
            self._note(line)

    def _note(self, line: dict[str, Any]) -> None:
        """A line's throughput, its validation loss towards the best, and an epoch line among :attr:`epoch_lines`."""
        while self.epoch_lines and supersedes(line, self.epoch_lines[-1]):
            self.epoch_lines.pop()
        if line.get("kind") == "epoch":
            self.epoch_lines.append(line)
        rate = line.get("pairs_per_s")
        if _number(rate):
            self.pairs_per_s = float(rate)
        value = line.get("val_loss") if line.get("kind") == "epoch" else None
        if _number(value):
            self.best_val_loss = value if self.best_val_loss is None else min(self.best_val_loss, value)

    def points(self, name: str, axis: str = "epoch") -> list[tuple[float, float]]:
        """The series ``name`` as (x, value) on ``axis`` (one of :data:`X_AXES`); points without that x are left out."""
        located = ((getattr(point, axis), point.value) for point in self.series.get(name, ()))
        return [(float(x), value) for x, value in located if x is not None]

    def load_history(self, lines: list[dict[str, Any]], definitions: dict[str, str]) -> None:
        """Replace the series with a run's whole ``metrics.jsonl``."""
        self.series, self.epoch_lines = {}, []
        self.pairs_per_s = self.best_val_loss = None
        self.definitions = dict(definitions)
        self.add_lines(lines)
        self.history_loaded = True

    def _rewind(self, step: int, names: tuple[str, ...]) -> None:
        """Drop the points a line at ``step`` supersedes: any at a later step, and its own kind's at this step."""
        dropped = False
        for name, points in self.series.items():
            while points and (points[-1].step > step or (points[-1].step == step and name in names)):
                points.pop()
                dropped = True
        if dropped:  # the best may have been among them
            kept = [point.value for point in self.series.get("val_loss", []) if math.isfinite(point.value)]
            self.best_val_loss = min(kept, default=None)

    def _add_points(self, where: Point, metrics: dict[str, Any], names: tuple[str, ...]) -> None:
        for name in names:
            value = metrics.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.series.setdefault(name, []).append(where._replace(value=float(value)))


class Session:
    """The runs of this session and the saved ones, in order of appearance.

    A run's number (and so its color) is the same in every launch on a checkpoints folder: the
    numbers an earlier launch gave are recalled (:meth:`recall_numbers`, from :mod:`tui.memory`),
    and a run they do not name gets the next number after every number given so far (the app adds
    runs in the order they were made). A deleted run's number is not given again.
    """

    def __init__(self) -> None:
        self.runs: dict[str, RunState] = {}
        self.numbers: dict[str, int] = {}  # every number given or recalled, by run name
        self.next_number = 1

    def recall_numbers(self, numbers: dict[str, int], next_number: int) -> None:
        """The numbers an earlier launch gave: those runs get theirs again, new ones count on after all of them."""
        self.numbers = dict(numbers)
        self.next_number = max([next_number, *(number + 1 for number in numbers.values())])

    def add(self, name: str, config: RunConfig, **state: Any) -> RunState:
        """A new run with its number (recalled, else the next) and that number's color."""
        number = self.numbers.get(name)
        if number is None or any(run.number == number for run in self.runs.values()):
            number = self.next_number
        self.next_number = max(self.next_number, number + 1)
        self.numbers[name] = number
        run = RunState(name=name, config=config, number=number, color=PALETTE[(number - 1) % len(PALETTE)], **state)
        self.runs[name] = run
        return run

    def get(self, name: str) -> RunState | None:
        return self.runs.get(name)

    def remove(self, name: str) -> None:
        self.runs.pop(name, None)
        self.numbers.pop(name, None)

    def rename(self, old: str, new: str) -> RunState | None:
        """The run ``old`` is called ``new`` from now on: same place, number, color and state."""
        run = self.runs.get(old)
        if run is None:
            return None
        run.name = new
        run.config = run.config.model_copy(update={"name": new})
        self.runs = {new if name == old else name: state for name, state in self.runs.items()}
        self.numbers[new] = self.numbers.pop(old, run.number)
        return run

    @property
    def shown(self) -> list[RunState]:
        return [run for run in self.runs.values() if run.shown]

    @property
    def alive(self) -> list[RunState]:
        """Runs training or queued, by whichever process."""
        return [run for run in self.runs.values() if run.alive]
