"""Four live plots: entropy, KL, training loss and validation loss, one line per shown run.

The x axis is in epochs: fractional for the training windows (``StepMetrics``), whole at epoch
ends for validation (``EpochMetrics``); ``x`` switches it to the training step, then to training
wall time and back (:data:`X_AXIS_LABELS`). Wall time is the ``wall_s`` of each metrics line:
seconds the run has spent training. A resumed run's clock goes on from the time it had reached at
its checkpoint (the engine's ``WallClock``), so time while stopped is not counted, and the lines
a killed trainer wrote past its last checkpoint are dropped with the work they described
(:meth:`tui.session.RunState.add_lines`); runs trained side by side each have their own clock.
Each pane's title names the metric's definition in force
(``study``: the study's clipped raw outputs; ``softmax``: probabilities) and where its series
come from. Series are downsampled to about the pane's resolution, and a pane is redrawn on a
timer only when its own points changed, so drawing stays cheap however long a run trains.

Reading the plots:

- The legend is a line above the panes: each run's number, objective and weight, in its color
  and with its own marker, so runs are told apart without color too.
- Tick labels are compact (``2.86e-4``, ``6.25``). The log y axis is drawn here, not by plotext:
  the panes plot log10(y) of the positive points and label the ticks with y itself.
- A cursor (←/→, home/end; escape hides it) marks one x in every pane, and the readout line under
  the panes gives every shown run's value at that x in each pane (the point nearest to it).
- ``e`` cycles exponential smoothing 0 → 0.6 → 0.9 (:func:`ema`); the raw line stays, faint.
- ``+`` / ``-`` zoom the x range in / out by 2 around the cursor (or the latest x), ``0`` shows
  everything again; each pane's y range fits the points inside the x range.
- ``[`` / ``]`` (or a click) select a pane, marked ▸ while the plots have focus; ↑ / ↓ zoom its
  y range in / out by 2 around its first run's value at the cursor (or its latest value),
  ``y`` fits it again (:func:`zoom_window`). Each pane keeps its own zoom; a log y axis zooms
  in log10 units.
- A click in a pane puts the cursor at the x under the mouse (:meth:`SafePlot.x_at`, from the
  geometry plotext drew), on the nearest x some shown run has a point at.
- A pane that fails to draw says so in its place; the app and the other panes go on.
- ``c`` saves the shown runs' metrics as CSV, ``p`` the screen with the plots as SVG (:mod:`tui.export`).
- Seed groups (shown runs that differ only in their seed, :func:`engine.runs.groups.seed_groups`) are
  drawn as one mean line with a shaded band (:func:`engine.runs.groups.aggregate`): min–max, or ±1 sd
  (``b`` toggles); ``g`` draws every run on its own again. On the epoch axis the members' points
  align; by step or wall time each member is interpolated onto the others' x values, and the
  pane's title says so. The readout gives a group's mean ± sd and n.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from engine.runs.groups import Band, GroupSeries, aggregate, seed_groups
from tui.export import export_path, metrics_csv, write_atomically
from tui.session import X_AXES, RunState, Session

REDRAW_INTERVAL_S = 0.5
MIN_POINTS = 40
Y_TICKS = 5
DEFINITION_NAMES = {"study": "study-clipped outputs", "softmax": "softmax"}
TITLE_MARGIN = 10  # plotext drops a title wider than the plot minus its y tick labels
MARKERS = ("•", "x", "+", "o", "*", "■", "◆", "▲", "#", "@")
SMOOTHING_STEPS = (0.0, 0.6, 0.9)
FAINT = 0.4  # the raw line's color under smoothing: this share of the run's color
X_AXIS_LABELS = {"epoch": "epoch", "step": "step", "wall": "training wall time (s)"}  # the x label under tall panes
X_AXIS_NAMES = {"epoch": "epoch", "step": "step", "wall": "wall time"}  # in the readout and short titles
Y_ZOOM_STEP = 2.0
MIN_Y_ZOOM = Y_ZOOM_STEP**-12  # the narrowest y window, a share of the fitted range: finer, the 3-digit ticks would repeat


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
QUALITY_PANES = (
    Pane("accuracy", "accuracy", "train_accuracy", "accuracy", None),
    Pane("perplexity", "perplexity", "train_perplexity", "perplexity", None),
    Pane("distinct", "distinct predictions", "train_distinct_predictions", "distinct_predictions", None),
    Pane("val-loss-2", "validation loss", None, "val_loss", None),
)
PANE_SETS = (PANES, QUALITY_PANES)  # m cycles them; four panes at a time so 80×24 still shows them all


BAND_NAMES: dict[Band, str] = {"minmax": "min–max", "sd": "±1 sd"}
BAND_MARKER = "·"


@dataclass(frozen=True)
class Line:
    """What the panes draw as one line: a shown run, or a seed group of shown runs (its mean with a band)."""

    runs: tuple[RunState, ...]

    @property
    def lead(self) -> RunState:
        """The member whose color and marker the line takes (the lowest seed)."""
        return self.runs[0]

    @property
    def is_group(self) -> bool:
        return len(self.runs) > 1

    @property
    def marker(self) -> str:
        return MARKERS[(self.lead.number - 1) % len(MARKERS)]


def band_path(xs: list[float], low: list[float], high: list[float], columns: int) -> tuple[list[float], list[float]]:
    """A zigzag through the band: up at one x, along the top, down at the next, along the bottom, … ``columns`` x values
    spread evenly over the band (low and high interpolated linearly), so drawn as one line it shades every column between them."""
    if len(xs) < 2:
        return list(xs) * 2, [*low, *high]
    count = max(2, columns)
    grid = [xs[0] + (xs[-1] - xs[0]) * i / (count - 1) for i in range(count)]
    path_x: list[float] = []
    path_y: list[float] = []
    for i, x in enumerate(grid):
        bottom, top = _interpolate(xs, low, x), _interpolate(xs, high, x)
        path_x += [x, x]
        path_y += [bottom, top] if i % 2 == 0 else [top, bottom]
    return path_x, path_y


def _interpolate(xs: list[float], ys: list[float], x: float) -> float:
    """``ys`` at ``x``, linear between the neighbouring points (xs sorted)."""
    i = min(max(bisect_left(xs, x), 1), len(xs) - 1)
    x0, x1 = xs[i - 1], xs[i]
    share = 0.0 if x1 == x0 else (x - x0) / (x1 - x0)
    return ys[i - 1] + share * (ys[i] - ys[i - 1])


def downsample(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most ``limit`` points spread evenly over the series, the first and last kept."""
    if len(points) <= limit or limit < 2:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def ema(values: list[float], alpha: float) -> list[float]:
    """Exponential moving average, debiased as TensorBoard does.

    s_t = α·s_{t−1} + (1 − α)·y_t with s_0 = 0, reported as s_t / (1 − α^t), so the first
    points are not pulled towards 0. α = 0 returns the values unchanged.
    """
    if alpha <= 0:
        return list(values)
    smoothed, state = [], 0.0
    for t, value in enumerate(values, 1):
        state = alpha * state + (1 - alpha) * value
        smoothed.append(state / (1 - alpha**t))
    return smoothed


def compact(value: float) -> str:
    """A short number: three significant digits, scientific outside [1e-3, 1e4) (``2.86e-4``, ``1.2e5``)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    text = f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa.rstrip('0').rstrip('.') if '.' in mantissa else mantissa}e{int(exponent)}"


def y_ticks(low: float, high: float, log: bool, count: int = Y_TICKS) -> tuple[list[float], list[str]]:
    """``count`` evenly spaced positions over [low, high] (log10 units when ``log``) and their compact labels."""
    if high <= low or count < 2:
        return [low], [compact(10**low if log else low)]
    positions = [low + (high - low) * i / (count - 1) for i in range(count)]
    return positions, [compact(10**p if log else p) for p in positions]


def x_text(x: float, axis: str) -> str:
    """An x value with its unit: ``1.5`` (epoch), ``40`` (step), ``42.5 s`` (wall time)."""
    if axis == "step":
        return f"{x:.0f}"
    if axis == "wall":
        return f"{x:.4g} s" if abs(x) < 1e4 else f"{x:.0f} s"
    return compact(x)


def zoom_window(low: float, high: float, factor: float, center: float) -> tuple[float, float]:
    """The part of [low, high] ``factor`` as tall (0 < factor ≤ 1), centred on ``center`` as far as it stays inside.

    With h = factor·(high − low)/2 the window is [c − h, c + h], shifted up or down into [low, high].
    """
    half = (high - low) * factor / 2
    start = min(max(low, center - half), high - 2 * half)
    return start, start + 2 * half


def tick_count(height: int, with_xlabel: bool) -> int:
    """As many y ticks as fit two rows apart in a pane ``height`` rows high (title, frame, x ticks and label off).

    Ticks closer than that would share a row, and plotext would then show one of them at random.
    """
    rows = height - 4 - int(with_xlabel)
    return max(2, min(Y_TICKS, (rows + 1) // 2))


def nearest(points: list[tuple[float, float]], x: float) -> tuple[float, float] | None:
    """The point whose x is nearest to ``x`` (points sorted by x), the earlier one on a tie."""
    if not points:
        return None
    xs = [px for px, _ in points]
    i = bisect_left(xs, x)
    candidates = [points[j] for j in (i - 1, i) if 0 <= j < len(points)]
    return min(candidates, key=lambda point: abs(point[0] - x))


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def faint(color: str) -> tuple[int, int, int]:
    return tuple(round(channel * FAINT) for channel in hex_to_rgb(color))  # type: ignore[return-value]


class SafePlot(PlotextPlot):
    """A plotext pane that shows a sentence instead of failing when plotext cannot draw its data.

    Each render keeps the x geometry plotext drew: the canvas's first column, its width and its
    x limits, so that :meth:`x_at` maps a column back to x.
    """

    class Clicked(Message):
        """A click in the pane, at ``column`` of the widget."""

        def __init__(self, plot: SafePlot, column: int) -> None:
            super().__init__()
            self.plot, self.column = plot, column

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.canvas: tuple[int, int, float, float] | None = None  # first column, width, x at its left and right ends

    def render(self) -> RenderResult:
        try:
            rendered = super().render()
        except Exception as error:  # a drawing error must never end the app
            self.canvas = None
            return Text(f"This plot could not be drawn ({type(error).__name__}: {error}); the other panes go on.", style="red")
        monitor = self.plt.monitor  # type: ignore[attr-defined]  # plotext's untyped figure sets it in __init__, unseen by mypy
        columns, (left, right) = monitor.matrix.Cols_canvas, monitor.xlim[0]
        self.canvas = (columns.start, len(columns), left, right) if len(columns) and None not in (left, right) else None
        return rendered

    def x_at(self, column: int) -> float | None:
        """The x drawn at ``column``: plotext puts x in cell ⌊½ + (w − 1)(x − x₀)/(x₁ − x₀)⌋ of a canvas w cells
        wide, so the cell's centre is x₀ + c·(x₁ − x₀)/(w − 1); columns left or right of the canvas give its ends."""
        if self.canvas is None:
            return None
        start, width, left, right = self.canvas
        cell = max(0, min(width - 1, column - start))
        return left if width < 2 else left + cell * (right - left) / (width - 1)

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Clicked(self, event.x))


class MetricPlots(Vertical):
    """Legend, the 2×2 grid of plots and the cursor's readout.

    ``l`` toggles a log y axis, ``v`` entropy/KL between training windows and validation,
    ``e`` cycles smoothing, ``x`` the x axis, ←/→ move the cursor, ↑/↓ zoom the selected pane's y.
    """

    can_focus = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "toggle_log", "Log y"),
        Binding("v", "toggle_validation", "Train/val"),
        Binding("e", "cycle_smoothing", "Smooth"),
        Binding("m", "cycle_panes", "Panes: entropy, KL, losses ↔ accuracy, perplexity, distinct", show=False),
        Binding("c", "export_csv", "Save CSV", show=False),
        Binding("p", "export_svg", "Save SVG", show=False),
        Binding("left", "move_cursor(-1)", "Cursor ←", show=False),
        Binding("right", "move_cursor(1)", "Cursor →", show=False),
        Binding("home", "cursor_to(0)", "Cursor to start", show=False),
        Binding("end", "cursor_to(-1)", "Cursor to end", show=False),
        Binding("escape", "hide_cursor", "Hide cursor", show=False),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom x in", show=False),
        Binding("minus", "zoom(2)", "Zoom x out", show=False),
        Binding("0", "zoom(0)", "Whole x range", show=False),
        Binding("x", "cycle_x_axis", "X axis: epoch → step → training wall time", show=False),
        Binding("left_square_bracket", "select_pane(-1)", "Select the previous pane (for y zoom)", show=False),
        Binding("right_square_bracket", "select_pane(1)", "Select the next pane (for y zoom)", show=False),
        Binding("up", "zoom_y(0.5)", "Zoom the selected pane's y in", show=False),
        Binding("down", "zoom_y(2)", "Zoom the selected pane's y out", show=False),
        Binding("y", "zoom_y(0)", "Whole y range in the selected pane", show=False),
        Binding("g", "toggle_groups", "Seed groups as mean + band ↔ every run", show=False),
        Binding("b", "toggle_band", "Group band: min–max ↔ ±1 sd", show=False),
    ]

    DEFAULT_CSS = """
    MetricPlots #plot-legend { height: auto; max-height: 2; padding: 0 1; }
    MetricPlots #plot-panes { grid-size: 2 2; grid-gutter: 0 1; height: 1fr; }
    MetricPlots #plot-readout { height: auto; max-height: 3; padding: 0 1; display: none; }
    MetricPlots #plot-readout.-shown { display: block; }
    MetricPlots:focus #plot-panes { background-tint: $foreground 3%; }
    """

    log_scale: reactive[bool] = reactive(False)
    validation: reactive[bool] = reactive(False)
    smoothing: reactive[float] = reactive(0.0)
    cursor: reactive[float | None] = reactive(None)
    x_range: reactive[tuple[float, float] | None] = reactive(None)  # None: every x
    pane_set: reactive[int] = reactive(0, init=False)  # which of PANE_SETS is shown (compose hides the others)
    x_axis: reactive[str] = reactive("epoch")  # one of X_AXES
    selected: reactive[int] = reactive(0)  # the pane (index among the four shown) that ↑ / ↓ / y act on
    grouped: reactive[bool] = reactive(True)  # seed groups drawn as one mean line with a band
    band: reactive[Band] = reactive[Band]("minmax")

    def __init__(self, session: Session, checkpoints: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.checkpoints = Path(checkpoints)
        self.drawn: dict[str, dict[str, list[tuple[float, float]]]] = {}  # pane id → legend → raw points, as last drawn
        self.y_zoom: dict[str, float] = {}  # pane id → share of the fitted y range shown (absent: all of it)
        self.y_limits: dict[str, tuple[float, float]] = {}  # pane id → its y range as last drawn (log10 units under log y)
        self._signatures: dict[str, tuple[object, ...]] = {}
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield Static("", id="plot-legend")
        with Grid(id="plot-panes"):
            for index, panes in enumerate(PANE_SETS):
                for pane in panes:
                    plot = SafePlot(id=f"plot-{pane.id}")
                    plot.display = index == self.pane_set
                    yield plot
        yield Static("", id="plot-readout")

    def on_mount(self) -> None:
        self.set_interval(REDRAW_INTERVAL_S, self.redraw_if_changed)
        self.redraw_if_changed()

    @property
    def pending(self) -> bool:
        """Whether something changed that the next redraw tick will draw."""
        return self._dirty

    def mark_changed(self) -> None:
        """New points or another set of shown runs: redraw at the next tick."""
        self._dirty = True

    def on_resize(self) -> None:
        self._dirty = True

    def watch_log_scale(self) -> None:
        self._dirty = True

    def watch_validation(self) -> None:
        self._dirty = True

    def watch_pane_set(self, index: int) -> None:
        for number, panes in enumerate(PANE_SETS):
            for pane in panes:
                self.query_one(f"#plot-{pane.id}", SafePlot).display = number == index
        self._dirty = True

    @property
    def panes(self) -> tuple[Pane, ...]:
        """The four panes shown now."""
        return PANE_SETS[self.pane_set]

    def action_cycle_panes(self) -> None:
        self.pane_set = (self.pane_set + 1) % len(PANE_SETS)
        self.notify(f"Panes: {', '.join(pane.title for pane in self.panes)}.")

    def watch_smoothing(self) -> None:
        self._dirty = True

    def watch_x_range(self) -> None:
        self._dirty = True

    def watch_x_axis(self) -> None:
        self._dirty = True

    def watch_selected(self) -> None:
        self._dirty = True

    def watch_grouped(self) -> None:
        self._dirty = True

    def watch_band(self) -> None:
        self._dirty = True

    def on_focus(self) -> None:
        self._dirty = True  # the selected pane's mark shows while the plots have focus

    def on_blur(self) -> None:
        self._dirty = True

    def watch_cursor(self) -> None:
        self._dirty = True
        self.redraw_if_changed()

    # Actions -----------------------------------------------------------------------------------

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self.notify(f"Plots: {'log' if self.log_scale else 'linear'} y axis.")

    def action_toggle_groups(self) -> None:
        self.grouped = not self.grouped
        self.notify(f"Plots: {'seed groups as their mean with a band' if self.grouped else 'every run on its own'}.")

    def action_toggle_band(self) -> None:
        self.band = "sd" if self.band == "minmax" else "minmax"
        self.notify(f"Group bands: {BAND_NAMES[self.band]}.")

    def lines(self, runs: list[RunState]) -> list[Line]:
        """The shown runs as the panes draw them: each seed group as one line while ``grouped``, else one per run."""
        if not self.grouped:
            return [Line((run,)) for run in runs]
        return [Line(group.members) for group in seed_groups(runs)]

    def group_series(self, line: Line, name: str) -> GroupSeries:
        """A group's mean and band on series ``name`` along the x axis shown (epochs align; steps and wall time interpolate)."""
        members = [run.points(name, self.x_axis) for run in line.runs]
        series = [([x for x, _ in points], [y for _, y in points]) for points in members if points]
        return aggregate(series, self.band, self.x_axis == "epoch")

    def action_toggle_validation(self) -> None:
        self.validation = not self.validation
        self.notify(f"Entropy and KL: {'validation at epoch ends' if self.validation else 'training windows'}.")

    def action_cycle_smoothing(self) -> None:
        index = SMOOTHING_STEPS.index(self.smoothing) if self.smoothing in SMOOTHING_STEPS else -1
        self.smoothing = SMOOTHING_STEPS[(index + 1) % len(SMOOTHING_STEPS)]
        self.notify(f"Smoothing: {'off' if not self.smoothing else f'exponential moving average {self.smoothing:g}'}.")

    def action_cycle_x_axis(self) -> None:
        """Next x axis; the cursor and the x range move to the same points on the new one."""
        old, new = self.x_axis, X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]
        cursor = None if self.cursor is None else self.convert_x(self.cursor, old, new)
        x_range = None
        if self.x_range is not None:
            low, high = (self.convert_x(x, old, new) for x in self.x_range)
            x_range = (low, high) if low is not None and high is not None and low < high else None
        self.x_axis, self.x_range, self.cursor = new, x_range, cursor
        runs = [run for run in self.session.shown if run.series]
        missing = sum(not any(run.points(self.series_name(pane), new) for pane in self.panes) for run in runs)
        note = f" {missing} shown run(s) recorded none (trained before wall time was recorded)." if missing else ""
        self.notify(f"x axis: {X_AXIS_LABELS[new]}.{note}")

    def convert_x(self, x: float, old: str, new: str) -> float | None:
        """Where the point nearest to ``x`` on axis ``old`` sits on axis ``new`` (shown runs, shown panes)."""
        pairs = [
            (getattr(point, old), getattr(point, new))
            for run in self.session.shown
            for pane in self.panes
            for point in run.series.get(self.series_name(pane), [])
        ]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        return float(min(pairs, key=lambda pair: abs(pair[0] - x))[1]) if pairs else None

    def action_select_pane(self, step: int) -> None:
        """The next or previous pane becomes the one ↑ / ↓ / y act on (its title is marked ▸)."""
        self.selected = (self.selected + step) % len(self.panes)

    def action_zoom_y(self, factor: float) -> None:
        """Scale the selected pane's y range by ``factor`` (0: fit all of it again); a range as tall as the fit is no zoom."""
        pane = self.panes[self.selected]
        share = 0.0 if factor == 0 else max(MIN_Y_ZOOM, self.y_zoom.get(pane.id, 1.0) * factor)
        if 0 < share < 1:
            self.y_zoom[pane.id] = share
        else:
            self.y_zoom.pop(pane.id, None)
        self._dirty = True

    @on(SafePlot.Clicked)
    def _clicked(self, message: SafePlot.Clicked) -> None:
        """A click selects its pane and puts the cursor on the x some shown run has a point at nearest to the click's."""
        self.focus()
        index = next((i for i, pane in enumerate(self.panes) if message.plot.id == f"plot-{pane.id}"), None)
        if index is None:
            return
        self.selected = index
        x = message.plot.x_at(message.column)
        positions = self.cursor_positions()
        if x is not None and positions:
            self.cursor = min(positions, key=lambda position: abs(position - x))

    def action_export_csv(self) -> None:
        """Save every metrics line of the shown runs as one CSV file."""
        runs = self.session.shown
        if not runs:
            self.notify("No run is shown: show one in the runs list (F5, space) to save its metrics.", severity="warning")
            return
        try:
            groups = [group for group in seed_groups(runs) if group.n > 1]
            text = metrics_csv(self.checkpoints, [run.name for run in runs], groups)
            path = write_atomically(export_path("metrics", "csv"), text)
        except OSError as error:
            self.notify(f"The metrics could not be saved ({error.strerror or error}).", title="Export", severity="error")
            return
        grouped = f" and {len(groups)} seed group(s)" if groups else ""
        self.notify(f"Saved the metrics of {len(runs)} run(s){grouped} to {path}", title="Export")

    def action_export_svg(self) -> None:
        """Save the screen, plots and legend as they are drawn now, as an SVG file."""
        try:
            path = write_atomically(export_path("plots", "svg"), self.app.export_screenshot(title="lm-explorer plots"))
        except OSError as error:
            self.notify(f"The plots could not be saved ({error.strerror or error}).", title="Export", severity="error")
            return
        self.notify(f"Saved the plots to {path}", title="Export")

    def cursor_positions(self) -> list[float]:
        """Every x at which some shown run has a point in some pane, sorted."""
        runs = [run for run in self.session.shown if run.series]
        return sorted({x for run in runs for pane in self.panes for x, _ in run.points(self.series_name(pane), self.x_axis)})

    def action_move_cursor(self, step: int) -> None:
        positions = self.cursor_positions()
        if not positions:
            return
        cursor = self.cursor
        if cursor is None:
            self.cursor = positions[-1 if step < 0 else 0]
            return
        here = min(range(len(positions)), key=lambda i: abs(positions[i] - cursor))
        self.cursor = positions[max(0, min(len(positions) - 1, here + step))]

    def action_cursor_to(self, index: int) -> None:
        positions = self.cursor_positions()
        if positions:
            self.cursor = positions[index]

    def action_zoom(self, factor: float) -> None:
        """Scale the x range by ``factor`` around the cursor (or the latest x); 0 shows the whole range."""
        positions = self.cursor_positions()
        if factor == 0 or len(positions) < 2:
            self.x_range = None
            return
        low, high = self.x_range or (positions[0], positions[-1])
        center = self.cursor if self.cursor is not None else high
        half = (high - low) * factor / 2
        low, high = max(positions[0], center - half), min(positions[-1], center + half)
        self.x_range = None if (low, high) == (positions[0], positions[-1]) or high <= low else (low, high)

    def action_hide_cursor(self) -> None:
        self.cursor = None

    # Reading -----------------------------------------------------------------------------------

    def series_name(self, pane: Pane) -> str:
        """The series a pane draws now."""
        if pane.train_series and pane.val_series:
            return pane.val_series if self.validation else pane.train_series
        return pane.train_series or pane.val_series or ""

    def pane_title(self, pane: Pane, runs: list[RunState], width: int | None = None) -> str:
        """Metric, definition in force among the shown runs, and the source of the series.

        With a ``width``, the longest of a full, a short and a bare wording (naming an x axis other than epochs) that fits in it.
        """
        name = self.series_name(pane)
        kinds = (
            sorted({run.definitions[pane.definition] for run in runs if pane.definition in run.definitions})
            if pane.definition
            else []
        )
        from_validation = name == pane.val_series
        by_axis = f" · by {X_AXIS_NAMES[self.x_axis]}" if self.x_axis != "epoch" else ""
        suffix = (" · log" if self.log_scale else "") + (f" · EMA {self.smoothing:g}" if self.smoothing else "") + by_axis
        suffix += f" · x {compact(self.x_range[0])}–{compact(self.x_range[1])}" if self.x_range else ""
        suffix += f" · y ×{1 / self.y_zoom[pane.id]:g}" if pane.id in self.y_zoom else ""
        suffix += "" if runs else " · no run shown"
        if self.x_axis != "epoch" and any(line.is_group for line in self.lines(runs)):
            suffix += " · groups interpolated"
        full = (
            f"{pane.title}{_definitions(kinds, DEFINITION_NAMES)} · "
            f"{'validation, epoch ends' if from_validation else 'training windows'}{suffix}"
        )
        short = f"{pane.title}{_definitions(kinds, {})} · {'val' if from_validation else 'train'}{suffix}"
        for title in (full, short, pane.title + by_axis):
            if width is None or len(title) <= width:
                return title
        return pane.title

    def readout(self) -> list[tuple[RunState, dict[str, tuple[float, float] | None]]]:
        """At the cursor: for each shown run, each pane's point nearest to the cursor's x (raw values)."""
        if self.cursor is None:
            return []
        runs = [run for run in self.session.shown if run.series]
        return [
            (run, {pane.id: nearest(run.points(self.series_name(pane), self.x_axis), self.cursor) for pane in self.panes})
            for run in runs
        ]

    def group_readout(self, line: Line, pane: Pane) -> tuple[float, float, float, int] | None:
        """A group's (x, mean, sd, n) at the x nearest to the cursor on ``pane``, or None without points there."""
        series = self.group_series(line, self.series_name(pane))
        if self.cursor is None or not series.x:
            return None
        i = min(range(len(series.x)), key=lambda j: abs(series.x[j] - (self.cursor or 0.0)))
        return series.x[i], series.mean[i], series.sd[i], series.n

    def readout_text(self) -> Text:
        """``epoch 1.5 │ #1 ce + kl 10: entropy 6.12 · KL 0.61 · training loss 6.62 · validation loss 6.75 (at 1)``.

        The x is given with its unit: ``step 40``, ``wall time 42.5 s``.
        """
        from engine.formatting import plus_minus

        text = Text(f"{X_AXIS_NAMES[self.x_axis]} {x_text(self.cursor or 0.0, self.x_axis)}", style="bold")
        for line in self.lines([run for run in self.session.shown if run.series]):
            if not line.is_group:
                continue
            text.append(" │ ")
            text.append(f"{line.marker} {self.group_legend(line)}:", style=line.lead.color)
            values = []
            for pane in self.panes:
                at_cursor = self.group_readout(line, pane)
                if at_cursor is None:
                    continue
                x, mean, sd, n = at_cursor
                at = "" if math.isclose(x, self.cursor or 0.0) else f" (at {x_text(x, self.x_axis)})"
                values.append(f"{pane.title} {plus_minus(mean, sd)} (n {n}){at}")
            text.append(" " + " · ".join(values) if values else " no points")
        grouped = {run.name for line in self.lines(self.session.shown) if line.is_group for run in line.runs}
        for run, points in self.readout():
            if run.name in grouped:
                continue
            text.append(" │ ")
            text.append(f"{MARKERS[(run.number - 1) % len(MARKERS)]} {self.legend(run)}:", style=run.color)
            values = []
            for pane in self.panes:
                point = points[pane.id]
                if point is None:
                    continue
                at = "" if math.isclose(point[0], self.cursor or 0.0) else f" (at {x_text(point[0], self.x_axis)})"
                values.append(f"{pane.title} {compact(point[1])}{at}")
            text.append(" " + " · ".join(values) if values else " no points")
        return text

    # Drawing -----------------------------------------------------------------------------------

    def redraw_if_changed(self) -> None:
        """Rebuild the lines of each pane whose points, size or mode changed since it was last drawn."""
        if not self._dirty:
            return
        self._dirty = False
        runs = [run for run in self.session.shown if run.series]
        self._draw_legend(runs)
        readout = self.query_one("#plot-readout", Static)
        readout.set_class(self.cursor is not None and bool(runs), "-shown")
        if self.cursor is not None:
            readout.update(self.readout_text())
        for pane in self.panes:
            plot = self.query_one(f"#plot-{pane.id}", SafePlot)
            name = self.series_name(pane)
            signature = (
                plot.size,
                self.log_scale,
                self.smoothing,
                self.cursor,
                self.x_range,
                name,
                self.x_axis,
                self.y_zoom.get(pane.id),
                self.has_focus and self.panes.index(pane) == self.selected,
                self.grouped,
                self.band,
                tuple(
                    (
                        run.name,
                        len(run.series.get(name, ())),
                        run.series[name][-1] if run.series.get(name) else None,
                        tuple(run.definitions.items()),
                    )
                    for run in runs
                ),
            )  # the last point too: a resumed run's rewind may keep the count
            if self._signatures.get(pane.id) != signature:
                self._signatures[pane.id] = signature
                try:
                    self._draw(plot, pane, runs)
                except Exception as error:  # contain it in the pane, as SafePlot.render does
                    plot.plt.clear_figure()
                    plot.plt.title(f"{pane.title}: not drawn ({type(error).__name__})")
                    plot.refresh()

    def _draw_legend(self, runs: list[RunState]) -> None:
        legend = Text()
        for line in self.lines(runs):
            if legend:
                legend.append("   ")
            label = self.group_legend(line) if line.is_group else self.legend(line.lead)
            legend.append(f"{line.marker} {label}", style=f"bold {line.lead.color}")
        self.query_one("#plot-legend", Static).update(
            legend or Text("No run shown: space in the runs list (F5) shows one.", style="dim")
        )

    def _draw(self, plot: PlotextPlot, pane: Pane, runs: list[RunState]) -> None:
        plt = plot.plt
        plt.clear_figure()
        mark = "▸ " if self.has_focus and self.panes.index(pane) == self.selected else ""  # the pane ↑ / ↓ / y act on
        plt.title(mark + self.pane_title(pane, runs, plot.size.width - TITLE_MARGIN - len(mark)))
        with_xlabel = plot.size.height >= 14
        if with_xlabel:
            plt.xlabel(X_AXIS_LABELS[self.x_axis])
        limit = max(plot.size.width, MIN_POINTS // 2)  # one marker per cell
        name = self.series_name(pane)
        self.drawn[pane.id] = {}
        ys: list[float] = []
        center: float | None = None  # the y that a y zoom centres on: the first run's at the cursor, or its latest
        low_x, high_x = self.x_range or (-math.inf, math.inf)
        for line in self.lines(runs):
            run = line.lead
            if line.is_group:
                drawn = self._draw_group(plt, line, name, plot.size.width, (low_x, high_x))
                if drawn is None:
                    continue
                self.drawn[pane.id][self.group_legend(line)], raw, band = drawn
                ys.extend(raw + band)
                xs = [x for x, _ in self.drawn[pane.id][self.group_legend(line)]]
            else:
                points = [
                    (x, y)
                    for x, y in run.points(name, self.x_axis)
                    if math.isfinite(y) and (y > 0 or not self.log_scale) and low_x <= x <= high_x
                ]
                if not points:
                    continue
                self.drawn[pane.id][self.legend(run)] = points = downsample(points, limit)
                xs = [x for x, _ in points]
                raw = [math.log10(y) if self.log_scale else y for _, y in points]
                ys.extend(raw)
            if self.smoothing:
                plt.plot(xs, raw, color=faint(run.color), marker="dot")
                smooth = ema(raw, self.smoothing)
                plt.plot(xs, smooth, color=hex_to_rgb(run.color), marker=line.marker)
            else:
                plt.plot(xs, raw, color=hex_to_rgb(run.color), marker=line.marker)
            if center is None:
                at = nearest(list(zip(xs, raw, strict=True)), self.cursor) if self.cursor is not None else None
                center = at[1] if at is not None else raw[-1]
        if self.x_range is not None:
            plt.xlim(*self.x_range)
        self.y_limits.pop(pane.id, None)
        if ys:
            low, high = min(ys), max(ys)
            if high - low < 1e-12:
                low, high = low - 0.5, high + 0.5
            if pane.id in self.y_zoom and center is not None:
                low, high = zoom_window(low, high, self.y_zoom[pane.id], center)
            self.y_limits[pane.id] = (low, high)
            plt.ylim(low, high)
            plt.yticks(*y_ticks(low, high, self.log_scale, tick_count(plot.size.height, with_xlabel)))
            if self.cursor is not None:
                plt.vertical_line(self.cursor, color="gray")
        plot.refresh()

    def _draw_group(
        self, plt: Plot, line: Line, name: str, width: int, x_range: tuple[float, float]
    ) -> tuple[list[tuple[float, float]], list[float], list[float]] | None:
        """Draw a group's band (shaded, :func:`band_path`) and return its mean's points, their drawn y and the band's drawn y."""
        series = self.group_series(line, name)
        keep = [
            i
            for i, x in enumerate(series.x)
            if x_range[0] <= x <= x_range[1]
            and all(math.isfinite(v) and (v > 0 or not self.log_scale) for v in (series.mean[i], series.low[i], series.high[i]))
        ]
        if not keep:
            return None
        scale = math.log10 if self.log_scale else float
        xs = [series.x[i] for i in keep]
        mean, low, high = ([scale(values[i]) for i in keep] for values in (series.mean, series.low, series.high))
        band_x, band_y = band_path(xs, low, high, width)
        plt.plot(band_x, band_y, color=faint(line.lead.color), marker=BAND_MARKER)
        return list(zip(xs, [series.mean[i] for i in keep], strict=True)), mean, low + high

    def group_legend(self, line: Line) -> str:
        """``#1,2,3 ce + kl 10 · 3 seeds, min–max``: the members' numbers, what they share, n and the band."""
        numbers = ",".join(str(number) for number in sorted(run.number for run in line.runs))
        return f"#{numbers} {self.legend(line.lead).partition(' ')[2]} · {len(line.runs)} seeds, {BAND_NAMES[self.band]}"

    @staticmethod
    def legend(run: RunState) -> str:
        """``#2 ce + kl 10``: the run's number in the runs list, its objective and weight."""
        from engine.formatting import objective_label

        weight = f" {run.config.objective.strength:g}" if run.config.objective.regularizer != "none" else ""
        return f"#{run.number} {objective_label(run.config.objective)}{weight}"


def _definitions(kinds: list[str], names: dict[str, str]) -> str:
    """`` (softmax)``, `` (study / softmax)`` when shown runs differ, or nothing for a metric without one."""
    return f" ({' / '.join(names.get(kind, kind) for kind in kinds)})" if kinds else ""
