"""The sweep view: the shown runs' final validation value against the setting they vary (:mod:`tui.sweep`).

One point per run, or per seed group its mean with a bar from the members' min to max; under the
plot a line per point gives the value (a group's mean ± sd, n and min–max). ``m`` shows the next
validation metric, ``s`` puts the next numeric setting that varies on the x axis; escape or ``w`` closes. It stays
live: every ``LIVE_S`` seconds it is worked out again from the runs it opened on (their series grow as they train)
and redrawn when anything it shows changed, such as a new last common epoch.
"""

from __future__ import annotations

import math
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tui.plotting import compact
from tui.session import RunState
from tui.sweep import Sweep, sweep

LIVE_S = 1.0


class SweepScreen(ModalScreen[None]):
    """A plot of the final value of one validation series against the swept setting, with its points as text."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,w", "dismiss", "Close the sweep view"),
        Binding("m", "next_metric", "Next validation metric"),
        Binding("s", "next_setting", "Next varied setting on x"),
    ]

    DEFAULT_CSS = """
    SweepScreen { align: center middle; }
    SweepScreen > Vertical { width: 95%; height: 90%; border: round $primary; background: $surface; }
    SweepScreen PlotextPlot { height: 1fr; min-height: 8; }
    SweepScreen #sweep-points { height: auto; max-height: 40%; }
    """

    def __init__(self, runs: list[RunState], metrics: list[tuple[str, str]]) -> None:
        super().__init__()
        self.runs, self.metrics, self.shown = runs, metrics, 0
        self.view: Sweep = sweep(runs, metrics[0][0])

    @property
    def metric(self) -> str:
        return self.metrics[self.shown][1]

    def compose(self) -> ComposeResult:
        with Vertical() as frame:
            frame.border_title = "Sweep · m next metric · s next setting · escape closes"
            yield PlotextPlot(id="sweep-plot")
            yield Static(id="sweep-points")

    def on_mount(self) -> None:
        self.draw()
        self.set_interval(LIVE_S, self.follow)

    def follow(self) -> None:
        """Work the view out again from the runs as they are now; redraw only when it changed."""
        latest = sweep(self.runs, self.metrics[self.shown][0], self.view.setting)
        if latest != self.view:
            self.view = latest
            self.draw()

    def action_next_metric(self) -> None:
        self.shown = (self.shown + 1) % len(self.metrics)
        self.view = sweep(self.runs, self.metrics[self.shown][0], self.view.setting)
        self.draw()

    def action_next_setting(self) -> None:
        settings = self.view.settings
        if len(settings) > 1 and self.view.setting in settings:
            following = settings[(settings.index(self.view.setting) + 1) % len(settings)]
            self.view = sweep(self.runs, self.metrics[self.shown][0], following)
            self.draw()

    def heading(self) -> str:
        """``validation loss at epoch 3 vs objective.weight · log x``."""
        view = self.view
        if view.setting is None or view.epoch is None:
            return f"{self.metric}: {view.note}"
        also = f" · also varied: {', '.join(view.others)}" if view.others else ""
        return f"{self.metric} at epoch {view.epoch} vs {view.setting}{' · log x' if view.log_x else ''}{also}"

    def draw(self) -> None:
        view, plot = self.view, self.query_one("#sweep-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_figure()
        plt.title(self.heading())
        at = math.log10 if view.log_x else float
        for point in view.points:
            x = at(point.x)
            if len(point.values) > 1:
                plt.plot([x, x], [point.low, point.high], color=point.color, marker="braille")
            plt.scatter([x], [point.mean], color=point.color, marker=point.marker)
        if view.points:
            xs = sorted({point.x for point in view.points})
            plt.xticks([at(x) for x in xs], [compact(x) for x in xs])
            low, high = at(xs[0]), at(xs[-1])
            margin = 0.05 * (high - low) or 0.5  # points off the frame's edges
            plt.xlim(low - margin, high + margin)
            plt.xlabel(view.setting or "")
        plot.refresh()
        lines = Text()
        for point in view.points:
            lines.append(("\n" if lines else "") + point.text(view.setting or ""), style=point.color)
        self.query_one("#sweep-points", Static).update(lines or Text(view.note, style="dim"))
