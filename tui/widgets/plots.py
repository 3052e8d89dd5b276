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

- Each run is a line (braille, two points per cell) in its color, with its own marker at the
  cursor's point, or at its last point while there is no cursor (as TensorBoard marks lines). The
  legend is a line above the panes: each run's number and name, in its color and
  with its marker, so runs are told apart without color too.
- Every pane gets at least ``MIN_PANE_ROWS`` rows (:func:`tui.plotting.pane_grid`): where four do
  not fit (80×24 with a full runs list) two are shown side by side, and ``m`` pages through the
  set, then on to the next set.
- The maths (what each pane shows, from points alone) is :mod:`tui.plotting`; a pane draws one
  :class:`~tui.plotting.Figure` per frame, so ticks and points always share a scale.
- Tick labels are compact (``2.86e-4``, ``6.25``). The log y axis is drawn here, not by plotext:
  the panes plot log10(y) of the positive points and label the ticks with y itself.
- A cursor (←/→, home/end; escape hides it) marks one x in every pane, and the readout line under
  the panes gives every shown run's value at that x in each pane (the point nearest to it), a line per run.
  A move draws no line again: each pane keeps plotext's drawing of its lines and gets the cursor's
  line and markers laid over it (:mod:`tui.widgets.plot_pane`); points that came meanwhile wait for the
  redraw tick (one tick more right after a move, so that drawing them does not hold up the next key).
- ``e`` cycles exponential smoothing 0 → 0.6 → 0.9 (:func:`tui.plotting.ema`); the raw line stays, faint.
- ``+`` / ``-`` zoom the x range in / out by 2 around the cursor (or the latest x), ``0`` shows
  everything again; each pane's y range fits the points inside the x range.
- ``[`` / ``]`` (or a click) select a pane, marked ▸ while the plots have focus; ↑ / ↓ zoom its
  y range in / out by 2 around its first run's value at the cursor (or its latest value),
  ``y`` fits it again (:func:`tui.plotting.zoom_window`). Each pane keeps its own zoom; a log y axis zooms
  in log10 units.
- A click in a pane puts the cursor at the x under the mouse (:meth:`SafePlot.x_at`, from the
  geometry plotext drew), on the nearest x some shown run has a point at.
- A pane that fails to draw says so in its place; the app and the other panes go on.
- ``c`` saves the shown runs' metrics as CSV (:mod:`tui.export`); ``p`` saves the pane set in view (``P``: the
  selected pane) as a figure drawn by matplotlib (:func:`engine.study.figures.panes_figure`) in PNG, SVG and PDF: the
  runs' raw points on the x axis in force, log y if on, each line named by its run (a seed group: its mean and band).
- ``w`` opens the sweep view (:mod:`tui.screens.sweep`): the final validation loss (``m`` there: the next metric)
  against the setting the shown runs vary, a point per run or seed group (mean with its min–max).
- Seed groups (shown runs that differ only in their seed, :func:`engine.runs.groups.seed_groups`) are
  drawn as one mean line with a shaded band (:func:`engine.runs.groups.aggregate`): min–max, or ±1 sd
  (``b`` toggles); ``g`` draws every run on its own again. On the epoch axis the members' points
  align; by step or wall time each member is interpolated onto the others' x values, and the
  pane's title says so. The readout gives a group's mean ± sd and n.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from engine.errors import UserError
from engine.metric_table import Quantity, Source, measured
from engine.runs.groups import BandKind, GroupSeries, aggregate, seed_groups
from engine.study.figures import Line, PaneLines
from tui.export import metrics_csv, save_export
from tui.plotting import (
    MIN_Y_ZOOM,
    Band,
    Series,
    compact,
    marker,
    nearest,
    pane_figure,
    pane_grid,
    tick_count,
    translate_x,
    x_text,
    zoom_x,
)
from tui.session import PALETTE, X_AXES, RunState, Session
from tui.widgets.plot_pane import SafePlot

REDRAW_INTERVAL_S = 0.5
CURSOR_QUIET_S = REDRAW_INTERVAL_S  # new points wait one tick more when the cursor moved this recently
DEFINITION_NAMES = {"study": "study-clipped outputs", "softmax": "softmax"}
TITLE_MARGIN = 10  # plotext drops a title wider than the plot minus its y tick labels
SMOOTHING_STEPS = (0.0, 0.6, 0.9)
X_AXIS_LABELS = {"epoch": "epoch", "step": "step", "wall": "training wall time (s)"}  # the x label under tall panes
X_AXIS_NAMES = {"epoch": "epoch", "step": "step", "wall": "wall time"}  # in the readout and short titles


@dataclass(frozen=True)
class Pane:
    """One plot: its title, the series it draws from training windows or validation, its definition key."""

    id: str
    title: str
    train_series: str | None
    val_series: str | None
    definition: str | None


def _pane(id: str, title: str, quantity: Quantity, sources: tuple[Source, ...], definition: str | None = None) -> Pane:
    """A pane drawing ``quantity`` from the given sources (:mod:`engine.metric_table`)."""
    train = measured(quantity, "training").key if "training" in sources else None
    val = measured(quantity, "validation").key if "validation" in sources else None
    return Pane(id, title, train, val, definition)


BOTH: tuple[Source, ...] = ("training", "validation")
PANES = (
    _pane("entropy", "entropy", "entropy", BOTH, "entropy"),
    _pane("kl", "KL", "kl", BOTH, "kl"),
    _pane("train-loss", "training loss", "loss", ("training",)),
    _pane("val-loss", "validation loss", "loss", ("validation",)),
)
QUALITY_PANES = (
    _pane("accuracy", "accuracy", "accuracy", BOTH),
    _pane("perplexity", "perplexity", "perplexity", BOTH),
    _pane("distinct", "distinct predictions", "distinct_predictions", BOTH),
    _pane("val-loss-2", "validation loss", "loss", ("validation",)),
)
PANE_SETS = (PANES, QUALITY_PANES)  # m cycles them, and the pages of a set when the size shows fewer than its four


BAND_NAMES: dict[BandKind, str] = {"minmax": "min–max", "sd": "±1 sd"}


@dataclass(frozen=True)
class Shown:
    """What the panes draw as one line: a shown run, or a seed group of shown runs (its mean with a band)."""

    runs: tuple[RunState, ...]
    label: str  # the run's name, or the group's (its members' name without ``-s<seed>``)

    @property
    def lead(self) -> RunState:
        """The member whose color and marker the line takes (the lowest seed)."""
        return self.runs[0]

    @property
    def is_group(self) -> bool:
        return len(self.runs) > 1

    @property
    def marker(self) -> str:
        return marker(self.lead.number)


@dataclass(frozen=True)
class PaneInputs:
    """What a pane's figure is made from but the cursor: the lines' series, the settings of the moment, the titles."""

    mode: tuple[object, ...]  # :meth:`MetricPlots._mode` then: a cursor move reuses these while it holds
    series: list[Series]
    log: bool
    smoothing: float
    x_range: tuple[float, float] | None
    y_zoom: float | None
    width: int
    tick_rows: int
    title: str
    x_label: str


class MetricPlots(Vertical):
    """Legend, the grid of plots (2×2, or fewer panes a page where a pane would get under 8 rows) and the cursor's readout.

    ``l`` toggles a log y axis, ``v`` entropy/KL between training windows and validation,
    ``e`` cycles smoothing, ``x`` the x axis, ←/→ move the cursor, ↑/↓ zoom the selected pane's y.
    """

    can_focus = True

    class SweepRequested(Message):
        """Open the sweep view (:mod:`tui.screens.sweep`) of these runs; ``metrics``: (validation series, its name), the first shown first."""

        def __init__(self, runs: list[RunState], metrics: list[tuple[str, str]]) -> None:
            super().__init__()
            self.runs, self.metrics = runs, metrics

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "toggle_log", "Log y"),
        Binding("v", "toggle_validation", "Train/val"),
        Binding("e", "cycle_smoothing", "Smooth"),
        Binding("m", "cycle_panes", "Next panes: entropy, KL, losses → accuracy, perplexity, distinct", show=False),
        Binding("c", "export_csv", "Save CSV", show=False),
        Binding("p", "export_figure", "Save figure", show=False),
        Binding("P", "export_figure(True)", "Save the selected pane as a figure", show=False),
        Binding("w", "sweep_view", "Sweep view: final validation value vs the varied setting", show=False),
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
    MetricPlots #plot-readout { height: auto; max-height: 50%; padding: 0 1; display: none; }
    MetricPlots #plot-readout.-shown { display: block; }
    MetricPlots:focus #plot-panes { background-tint: $foreground 3%; }
    """

    log_scale: reactive[bool] = reactive(False)
    validation: reactive[bool] = reactive(False)
    smoothing: reactive[float] = reactive(0.0)
    cursor: reactive[float | None] = reactive(None)
    x_range: reactive[tuple[float, float] | None] = reactive(None)  # None: every x
    pane_set: reactive[int] = reactive(0, init=False)  # which of PANE_SETS is shown (compose hides the others)
    page: reactive[int] = reactive(0, init=False)  # which of the set's pages, when the size shows fewer than four panes
    x_axis: reactive[str] = reactive("epoch")  # one of X_AXES
    selected: reactive[int] = reactive(0)  # the pane (index among the four shown) that ↑ / ↓ / y act on
    grouped: reactive[bool] = reactive(True)  # seed groups drawn as one mean line with a band
    band: reactive[BandKind] = reactive[BandKind]("minmax")

    def __init__(self, session: Session, checkpoints: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.checkpoints = Path(checkpoints)
        self.drawn: dict[str, dict[str, list[tuple[float, float]]]] = {}  # pane id → legend → raw points, as last drawn
        self.y_zoom: dict[str, float] = {}  # pane id → share of the fitted y range shown (absent: all of it)
        self.y_limits: dict[str, tuple[float, float]] = {}  # pane id → its y range as last drawn (log10 units under log y)
        self._signatures: dict[str, tuple[object, ...]] = {}
        self._drawn_from: dict[str, PaneInputs] = {}  # pane id → what its figure was last made from
        self._cursor_moved = -math.inf  # time.monotonic() of the last cursor move
        self._tick_skipped = False
        self._lines_shown: dict[str | None, Text] = {}  # the legend's and readout's text as last shown
        self._line_rows: dict[str | None, int] = {}  # and their number of lines then
        self._dirty = True
        self.grid_shape = (2, 2)  # (columns, rows) of the panes' grid (:func:`tui.plotting.pane_grid`)

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
        self.set_interval(REDRAW_INTERVAL_S, self.redraw_tick)
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

    @on(SafePlot.Resized)
    def _pane_resized(self) -> None:
        """A pane's ticks and points per cell follow its size: draw it again at once, not with stale ticks till the next tick."""
        self._dirty = True
        self.redraw_if_changed()

    def watch_log_scale(self) -> None:
        self._dirty = True

    def watch_validation(self) -> None:
        self._dirty = True

    def watch_pane_set(self) -> None:
        self._show_panes()

    def watch_page(self) -> None:
        self._show_panes()

    def _show_panes(self) -> None:
        shown = {pane.id for pane in self.panes}
        for panes in PANE_SETS:
            for pane in panes:
                self.query_one(f"#plot-{pane.id}", SafePlot).display = pane.id in shown
        self.selected = min(self.selected, len(self.panes) - 1)
        self._dirty = True

    @property
    def per_page(self) -> int:
        columns, rows = self.grid_shape
        return columns * rows

    @property
    def panes(self) -> tuple[Pane, ...]:
        """The panes shown now: the set's page that fits (all four when each gets ``MIN_PANE_ROWS`` rows)."""
        start = self.page * self.per_page
        return PANE_SETS[self.pane_set][start : start + self.per_page]

    def action_cycle_panes(self) -> None:
        """The set's next page of panes, after its last page the next set."""
        if (self.page + 1) * self.per_page < len(PANE_SETS[self.pane_set]):
            self.page += 1
        else:
            self.page = 0
            self.pane_set = (self.pane_set + 1) % len(PANE_SETS)
            self._show_panes()
        self.notify(f"Panes: {', '.join(pane.title for pane in self.panes)}.")

    def _fit_grid(self) -> None:
        """Show as many panes as the area gives ``MIN_PANE_ROWS`` rows each (a 2×2, 2×1 or 1×1 grid)."""
        grid = self.query_one("#plot-panes", Grid)
        if not grid.size.height:
            return  # not laid out (its tab is hidden): keep the grid as it was
        shape = pane_grid(grid.size.width, grid.size.height, len(PANE_SETS[self.pane_set]))
        if shape == self.grid_shape:
            return
        self.grid_shape = shape
        grid.styles.grid_size_columns, grid.styles.grid_size_rows = shape
        self.page = min(self.page, (len(PANE_SETS[self.pane_set]) - 1) // self.per_page)
        self._show_panes()

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
        self._move_cursor()

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

    def lines(self, runs: list[RunState]) -> list[Shown]:
        """The shown runs as the panes draw them: each seed group as one line while ``grouped``, else one per run."""
        if not self.grouped:
            return [Shown((run,), run.name) for run in runs]
        return [Shown(group.members, group.label) for group in seed_groups(runs)]

    def group_series(self, line: Shown, name: str) -> GroupSeries:
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
        return translate_x([(a, b) for a, b in pairs if a is not None and b is not None], x)

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
            from tui.widgets.setup_form import flat_settings

            settings = {run.name: flat_settings(run.config) for run in runs}
            groups = [group for group in seed_groups(runs) if group.n > 1]
            text = metrics_csv(self.checkpoints, [run.name for run in runs], settings, groups)
            path = save_export("metrics", "csv", text.encode("utf-8"))
        except OSError as error:
            self.notify(f"The metrics could not be saved ({error.strerror or error}).", title="Export", severity="error")
            return
        except UserError as error:  # a member's metrics.jsonl refused (a link, a FIFO)
            self.notify(str(error), title="Export", severity="error")
            return
        grouped = f" and {len(groups)} seed group(s)" if groups else ""
        self.notify(f"Saved the metrics of {len(runs)} run(s){grouped} to {path}", title="Export")

    def action_export_figure(self, selected_only: bool = False) -> None:
        """Save the pane set in view (or only the selected pane) as PNG, SVG and PDF figures drawn by matplotlib.

        The lines are gathered here; matplotlib draws and saves them in a thread (a few seconds with its import), and the
        toast comes when the files are there.
        """
        from engine.study.figures import MATPLOTLIB_INSTALL, have_matplotlib

        if not have_matplotlib():
            self.notify(f"Figures are drawn by matplotlib, which is not installed: {MATPLOTLIB_INSTALL}.", severity="warning")
            return
        runs = [run for run in self.session.shown if run.series]
        if not runs:
            self.notify("No run with points is shown: show one in the runs list (F5, space) to draw it.", severity="warning")
            return
        panes = [self.panes[self.selected]] if selected_only else list(PANE_SETS[self.pane_set])
        what = f"the {panes[0].title} pane" if selected_only else f"{len(panes)} panes"
        lines = [self.figure_pane(pane, runs) for pane in panes]
        self._save_figure(lines, X_AXIS_LABELS[self.x_axis], self.log_scale, f"{what} of {len(runs)} run(s)")

    @work(thread=True, group="figure")
    def _save_figure(self, panes: list[PaneLines], x_label: str, log_y: bool, what: str) -> None:
        from engine.study.figures import FIGURE_FORMATS, figure_bytes, panes_figure

        figure = panes_figure(panes, x_label, log_y)
        try:
            paths = [save_export("figure", format, figure_bytes(figure, format)) for format in FIGURE_FORMATS]
        except OSError as error:
            self.notify(f"The figure could not be saved ({error.strerror or error}).", title="Export", severity="error")
            return
        self.notify(f"Saved {what} to {', '.join(str(path) for path in paths)}", title="Export")  # notify posts a message

    def action_sweep_view(self) -> None:
        """Ask for the sweep view of the shown runs: validation loss first, then every other pane's validation series."""
        metrics = {pane.val_series: pane.title for pane in (PANES[-1], *PANES, *QUALITY_PANES) if pane.val_series}
        named = [
            (series, title if title.startswith("validation") else f"validation {title}") for series, title in metrics.items()
        ]
        self.post_message(self.SweepRequested([run for run in self.session.shown if run.series], named))

    def figure_pane(self, pane: Pane, runs: list[RunState]) -> PaneLines:
        """A pane's lines as the figure draws them: raw points (no smoothing), a group's mean with its band, each in
        the color of matplotlib's cycle at its run's place in the app's palette: one color per run in every panel and
        every figure, dark enough for a white page (the palette's are for a dark terminal)."""
        lines = []
        for series in (self.series(line, self.series_name(pane)) for line in self.lines(runs)):
            x, y = [x for x, _ in series.points], [y for _, y in series.points]
            band = series.band
            low, high = (band.low, band.high) if band else (None, None)
            lines.append(Line(series.legend, x, y, low, high, f"C{PALETTE.index(series.color)}"))
        return PaneLines(self.pane_title(pane, runs), pane.title, lines)

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
        self.x_range = zoom_x(self.cursor_positions(), self.x_range, self.cursor, factor)

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

    def group_readout(self, line: Shown, pane: Pane) -> tuple[float, float, float, int] | None:
        """A group's (x, mean, sd, n) at the x nearest to the cursor on ``pane``, or None without points there."""
        series = self.group_series(line, self.series_name(pane))
        if self.cursor is None or not series.x:
            return None
        i = min(range(len(series.x)), key=lambda j: abs(series.x[j] - (self.cursor or 0.0)))
        return series.x[i], series.mean[i], series.sd[i], series.n

    def readout_text(self) -> Text:
        """``epoch 1.5 │ • #1 kl-best: entropy 6.12 · KL 0.61 · training loss 6.62 · validation loss 6.75 (at 1)``,
        then one such line per further shown run, under the first.

        The x is given with its unit: ``step 40``, ``wall time 42.5 s``.
        """
        from engine.metric_table import plus_minus

        at_x = f"{X_AXIS_NAMES[self.x_axis]} {x_text(self.cursor or 0.0, self.x_axis)}"
        text = Text(at_x, style="bold")
        rows = 0

        def next_row() -> None:  # a line per group and per run: every shown one is read at the cursor
            nonlocal rows
            text.append(" │ " if rows == 0 else "\n" + " " * len(at_x) + " │ ")
            rows += 1

        for line in self.lines([run for run in self.session.shown if run.series]):
            if not line.is_group:
                continue
            next_row()
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
            next_row()
            text.append(f"{marker(run.number)} {self.legend(run)}:", style=run.color)
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

    def redraw_tick(self) -> None:
        """The redraw timer's call. Within ``CURSOR_QUIET_S`` of a cursor move new points wait one tick more (never
        two in a row): drawing them is plotext's whole build of every pane, the costliest frame there is, and while
        ←/→ are pressed it would hold up the next key. So they are drawn at most a second late while the cursor moves."""
        if time.monotonic() - self._cursor_moved < CURSOR_QUIET_S and not self._tick_skipped:
            self._tick_skipped = True
            return
        self._tick_skipped = False
        self.redraw_if_changed()

    def redraw_if_changed(self) -> None:
        """Rebuild the lines of each pane whose points, size or mode changed since it was last drawn."""
        if not self._dirty:
            return
        self._dirty = False
        self._fit_grid()
        runs = [run for run in self.session.shown if run.series]
        self._draw_legend(runs)
        self._show_readout(runs)
        for pane in self.panes:
            plot = self.query_one(f"#plot-{pane.id}", SafePlot)
            mode = self._mode(pane, plot, runs)
            name = self.series_name(pane)
            points = tuple(
                (len(run.series.get(name, ())), run.series[name][-1] if run.series.get(name) else None) for run in runs
            )  # the last point too: a resumed run's rewind may keep the count
            if self._signatures.get(pane.id) != (mode, points):
                self._signatures[pane.id] = (mode, points)
                self._contained(plot, pane, partial(self._draw, plot, pane, runs, mode))
            elif plot.figure is not None and plot.figure.cursor != self.cursor and pane.id in self._drawn_from:
                # its lines are as drawn, but the cursor moved meanwhile (a move that found another pane's mode changed)
                self._contained(plot, pane, partial(self._show, plot, pane, self._drawn_from[pane.id]))

    def _mode(self, pane: Pane, plot: SafePlot, runs: list[RunState]) -> tuple[object, ...]:
        """Everything a pane's figure depends on but the cursor and the runs' points."""
        return (
            plot.size,
            self.log_scale,
            self.smoothing,
            self.x_range,
            self.series_name(pane),
            self.x_axis,
            self.y_zoom.get(pane.id),
            self.has_focus and self.panes.index(pane) == self.selected,
            self.grouped,
            self.band,
            tuple((run.name, tuple(run.definitions.items())) for run in runs),
        )

    def _move_cursor(self) -> None:
        """The readout, the cursor's line and the runs' markers follow the cursor at once, over each pane's lines as
        last drawn: its plotext drawing is kept (:mod:`tui.widgets.plot_pane`). Points that came since are drawn by the
        next redraw tick, as when the cursor stays; anything else changed too, and every pane is drawn again now."""
        runs = [run for run in self.session.shown if run.series]
        panes = [(pane, self.query_one(f"#plot-{pane.id}", SafePlot)) for pane in self.panes]
        drawn = [self._drawn_from.get(pane.id) for pane, _ in panes]
        if any(
            inputs is None or inputs.mode != self._mode(pane, plot, runs)
            for (pane, plot), inputs in zip(panes, drawn, strict=True)
        ):
            self._dirty = True
            self.redraw_if_changed()
            return
        self._cursor_moved = time.monotonic()
        self._show_readout(runs)
        for (pane, plot), inputs in zip(panes, drawn, strict=True):
            if inputs is not None:
                self._contained(plot, pane, partial(self._show, plot, pane, inputs))

    def _show_readout(self, runs: list[RunState]) -> None:
        readout = self.query_one("#plot-readout", Static)
        readout.set_class(self.cursor is not None and bool(runs), "-shown")
        if self.cursor is not None:
            self._update_line(readout, self.readout_text())

    @staticmethod
    def _contained(plot: SafePlot, pane: Pane, draw: Callable[[], None]) -> None:
        """``draw()``; an error is shown in the pane instead, as :meth:`SafePlot.render` does."""
        try:
            draw()
        except Exception as error:
            plot.show(None, f"{pane.title}: not drawn ({type(error).__name__})")

    def _draw_legend(self, runs: list[RunState]) -> None:
        legend = Text()
        for line in self.lines(runs):
            if legend:
                legend.append("   ")
            label = self.group_legend(line) if line.is_group else self.legend(line.lead)
            legend.append(f"{line.marker} {label}", style=f"bold {line.lead.color}")
        self._update_line(
            self.query_one("#plot-legend", Static),
            legend or Text("No run shown: space in the runs list (F5) shows one.", style="dim"),
        )

    def _update_line(self, line: Static, text: Text) -> None:
        """Show ``text`` in the legend or readout; lay the screen out again only when its number of lines changes.

        A layout pass refreshes every widget on the screen, the runs list's table too: on a cursor move
        under load it cost more than the rest of the frame.
        """
        if self._lines_shown.get(line.id) == text:
            return
        rows = len(text.wrap(self.app.console, max(1, line.content_region.width or line.size.width or 1)))
        layout = rows != self._line_rows.get(line.id)
        self._lines_shown[line.id], self._line_rows[line.id] = text, rows
        line.update(text, layout=layout)

    def _draw(self, plot: SafePlot, pane: Pane, runs: list[RunState], mode: tuple[object, ...]) -> None:
        """Take the pane's series from the shown runs' points and draw them (:meth:`_show`)."""
        mark = "▸ " if self.has_focus and self.panes.index(pane) == self.selected else ""  # the pane ↑ / ↓ / y act on
        with_xlabel = plot.size.height >= 14
        name = self.series_name(pane)
        inputs = PaneInputs(
            mode,
            [self.series(line, name) for line in self.lines(runs)],
            self.log_scale,
            self.smoothing,
            self.x_range,
            self.y_zoom.get(pane.id),
            plot.size.width,
            tick_count(plot.size.height, with_xlabel),
            mark + self.pane_title(pane, runs, plot.size.width - TITLE_MARGIN - len(mark)),
            X_AXIS_LABELS[self.x_axis] if with_xlabel else "",
        )
        self._drawn_from[pane.id] = inputs
        self._show(plot, pane, inputs)

    def _show(self, plot: SafePlot, pane: Pane, inputs: PaneInputs) -> None:
        """Compute the pane's figure at the cursor (:func:`tui.plotting.pane_figure`) and hand it over."""
        figure = pane_figure(
            inputs.series,
            log=inputs.log,
            smoothing=inputs.smoothing,
            x_range=inputs.x_range,
            cursor=self.cursor,
            y_zoom=inputs.y_zoom,
            width=inputs.width,
            tick_rows=inputs.tick_rows,
        )
        self.drawn[pane.id] = figure.drawn
        self.y_limits.pop(pane.id, None)
        if figure.y_limits is not None:
            self.y_limits[pane.id] = figure.y_limits
        plot.show(figure, inputs.title, inputs.x_label)

    def series(self, line: Shown, name: str) -> Series:
        """A line's points on series ``name``: a run's own, or a group's mean with its band (:meth:`group_series`)."""
        run = line.lead
        if not line.is_group:
            return Series(self.legend(run), run.color, line.marker, run.points(name, self.x_axis))
        group = self.group_series(line, name)
        points = list(zip(group.x, group.mean, strict=True))
        return Series(self.group_legend(line), run.color, line.marker, points, Band(group.x, group.low, group.high))

    def group_legend(self, line: Shown) -> str:
        """``#1,2,3 kl-w10 · 3 seeds, min–max``: the members' numbers, the group's name, n and the band."""
        numbers = ",".join(str(number) for number in sorted(run.number for run in line.runs))
        return f"#{numbers} {line.label} · {len(line.runs)} seeds, {BAND_NAMES[self.band]}"

    @staticmethod
    def legend(run: RunState) -> str:
        """``#2 kl-best``: the run's number in the runs list and its name (two runs of one objective differ by it)."""
        return f"#{run.number} {run.name}"


def _definitions(kinds: list[str], names: dict[str, str]) -> str:
    """`` (softmax)``, `` (study / softmax)`` when shown runs differ, or nothing for a metric without one."""
    return f" ({' / '.join(names.get(kind, kind) for kind in kinds)})" if kinds else ""
