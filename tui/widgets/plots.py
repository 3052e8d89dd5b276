"""Four live plots: entropy, KL, training loss and validation loss, one line per shown run.

The x axis is in epochs: fractional for the training windows (``StepMetrics``), whole at epoch
ends for validation (``EpochMetrics``). Each pane's title names the metric's definition in force
(``study``: the study's clipped raw outputs; ``softmax``: probabilities) and where its series
come from. Series are downsampled to about the pane's resolution, and a pane is redrawn on a
timer only when its own points changed, so drawing stays cheap however long a run trains.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.session import RunState, Session

REDRAW_INTERVAL_S = 0.5
MIN_POINTS = 40
DEFINITION_NAMES = {"study": "study-clipped outputs", "softmax": "softmax"}
TITLE_MARGIN = 10  # plotext drops a title wider than the plot minus its y tick labels


@dataclass(frozen=True)
class Pane:
    """One plot: its title, the series it draws from training windows or validation, its definition key."""

    id: str
    title: str
    train_series: str | None
    val_series: str | None
    definition: str | None


PANES = (
    Pane("entropy", "entropy", "train_entropy", "entropy", "entropy"),
    Pane("kl", "KL", "train_kl", "kl", "kl"),
    Pane("train-loss", "training loss", "train_loss", None, None),
    Pane("val-loss", "validation loss", None, "val_loss", None),
)


def downsample(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most ``limit`` points spread evenly over the series, the first and last kept."""
    if len(points) <= limit or limit < 2:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


class MetricPlots(Grid):
    """The 2×2 grid of plots. ``l`` toggles a log y axis, ``v`` entropy/KL between training windows and validation."""

    can_focus = True

    BINDINGS = [
        Binding("l", "toggle_log", "Log y"),
        Binding("v", "toggle_validation", "Train/val"),
    ]

    DEFAULT_CSS = """
    MetricPlots { grid-size: 2 2; grid-gutter: 0 1; }
    MetricPlots:focus { background-tint: $foreground 3%; }
    """

    log_scale: reactive[bool] = reactive(False)
    validation: reactive[bool] = reactive(False)

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.drawn: dict[str, dict[str, list[tuple[float, float]]]] = {}  # pane id → legend → points, as last drawn
        self._signatures: dict[str, tuple] = {}
        self._dirty = True

    def compose(self) -> ComposeResult:
        for pane in PANES:
            yield PlotextPlot(id=f"plot-{pane.id}")

    def on_mount(self) -> None:
        self.set_interval(REDRAW_INTERVAL_S, self.redraw_if_changed)
        self.redraw_if_changed()

    def mark_changed(self) -> None:
        """New points or another set of shown runs: redraw at the next tick."""
        self._dirty = True

    def on_resize(self) -> None:
        self._dirty = True

    def watch_log_scale(self) -> None:
        self._dirty = True

    def watch_validation(self) -> None:
        self._dirty = True

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self.notify(f"Plots: {'log' if self.log_scale else 'linear'} y axis.")

    def action_toggle_validation(self) -> None:
        self.validation = not self.validation
        self.notify(f"Entropy and KL: {'validation at epoch ends' if self.validation else 'training windows'}.")

    def series_name(self, pane: Pane) -> str:
        """The series a pane draws now."""
        if pane.train_series and pane.val_series:
            return pane.val_series if self.validation else pane.train_series
        return pane.train_series or pane.val_series or ""

    def pane_title(self, pane: Pane, runs: list[RunState], width: int | None = None) -> str:
        """Metric, definition in force among the shown runs, and the source of the series.

        With a ``width``, the longest of a full, a short and a bare wording that fits in it.
        """
        name = self.series_name(pane)
        kinds = sorted({run.definitions[pane.definition] for run in runs if pane.definition in run.definitions}) if pane.definition else []
        from_validation = name == pane.val_series
        suffix = (" · log" if self.log_scale else "") + ("" if runs else " · no run shown")
        full = (f"{pane.title}{_definitions(kinds, DEFINITION_NAMES)} · "
                f"{'validation, epoch ends' if from_validation else 'training windows'}{suffix}")
        short = f"{pane.title}{_definitions(kinds, {})} · {'val' if from_validation else 'train'}{suffix}"
        for title in (full, short):
            if width is None or len(title) <= width:
                return title
        return pane.title

    def redraw_if_changed(self) -> None:
        """Rebuild the lines of each pane whose points, size or mode changed since it was last drawn."""
        if not self._dirty:
            return
        self._dirty = False
        runs = [run for run in self.session.shown if run.series]
        for pane in PANES:
            plot = self.query_one(f"#plot-{pane.id}", PlotextPlot)
            name = self.series_name(pane)
            signature = (plot.size, self.log_scale, name,
                         tuple((run.name, len(run.series.get(name, ())), tuple(run.definitions.items())) for run in runs))
            if self._signatures.get(pane.id) != signature:
                self._signatures[pane.id] = signature
                self._draw(plot, pane, runs)

    def _draw(self, plot: PlotextPlot, pane: Pane, runs: list[RunState]) -> None:
        plt = plot.plt
        plt.clear_figure()
        plt.title(self.pane_title(pane, runs, plot.size.width - TITLE_MARGIN))
        if plot.size.height >= 14:
            plt.xlabel("epoch")
        limit = max(2 * plot.size.width, MIN_POINTS)  # the "hd" marker puts two points in a cell
        name = self.series_name(pane)
        self.drawn[pane.id] = {}
        for run in runs:
            points = [(x, y) for x, y in run.series.get(name, []) if y > 0 or not self.log_scale]
            if not points:
                continue
            points, label = downsample(points, limit), self.legend(run)
            self.drawn[pane.id][label] = points
            plt.plot([x for x, _ in points], [y for _, y in points], label=label, color=hex_to_rgb(run.color), marker="hd")
        # plotext fails to build an empty plot on a log axis: log only once there are points.
        plt.yscale("log" if self.log_scale and self.drawn[pane.id] else "linear")
        plot.refresh()

    @staticmethod
    def legend(run: RunState) -> str:
        """``#2 ce + kl 10``: the run's number in the runs list, its objective and weight."""
        from engine.report import objective_label

        weight = f" {run.config.objective.weight:g}" if run.config.objective.regularizer != "none" else ""
        return f"#{run.number} {objective_label(run.config.objective)}{weight}"


def _definitions(kinds: list[str], names: dict[str, str]) -> str:
    """`` (softmax)``, `` (study / softmax)`` when shown runs differ, or nothing for a metric without one."""
    return f" ({' / '.join(names.get(kind, kind) for kind in kinds)})" if kinds else ""
