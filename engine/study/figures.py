"""The study's figures, drawn twice: as PNGs with matplotlib (optional) and as plain-text plots;
and the app's panes as a figure for a paper (PNG, SVG or PDF).

A figure is a :class:`engine.study.grid.FigureSpec` (panels, lines, the study's titles) plus, for
each line, its per-epoch values for every seed (:class:`Series`). With one seed a line is that
seed's values; with several it is their mean, with the min–max spread drawn as a band. Both kinds
of figure draw their lines through :func:`draw_line`: a :class:`Line` is x, y and an optional band.

matplotlib is the ``report`` extra (``pip install 'lm-explorer[report]'``); without it only
the text plots are drawn. The text plots need nothing beyond the standard library.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.study.grid import FigureSpec, Panel

if TYPE_CHECKING:  # matplotlib is optional: imported where a PNG is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MATPLOTLIB_INSTALL = "pip install 'lm-explorer[report]' (or pip install matplotlib)"
MATPLOTLIB_HINT = f"matplotlib is not installed, so the PNG figures were skipped; get them with: {MATPLOTLIB_INSTALL} and run the same command again"
FIGURE_FORMATS = ("png", "svg", "pdf")


@dataclass(frozen=True)
class Line:
    """One drawn line: its legend label, x and y, optionally a band from ``low`` to ``high`` at each x, and its color
    (any matplotlib color, such as ``C3``; None: the color cycle's next)."""

    label: str
    x: list[float]
    y: list[float]
    low: list[float] | None = None
    high: list[float] | None = None
    color: str | None = None


@dataclass(frozen=True)
class PaneLines:
    """One panel of an app figure: its title, y label and lines."""

    title: str
    ylabel: str
    lines: list[Line]


@dataclass(frozen=True)
class Series:
    """One line: its legend label, the epochs, and ``values[seed][epoch]``."""

    label: str
    epochs: list[int]
    values: list[list[float]]

    @property
    def mean(self) -> list[float]:
        return [sum(column) / len(column) for column in zip(*self.values, strict=True)]

    @property
    def low(self) -> list[float]:
        return [min(column) for column in zip(*self.values, strict=True)]

    @property
    def high(self) -> list[float]:
        return [max(column) for column in zip(*self.values, strict=True)]

    def line(self) -> Line:
        """The mean line, with the min–max band when there are several seeds."""
        x = [float(epoch) for epoch in self.epochs]
        if len(self.values) > 1:
            return Line(self.label, x, self.mean, self.low, self.high)
        return Line(self.label, x, self.mean)


PanelData = tuple[Panel, list[Series]]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# -- PNG ------------------------------------------------------------------------------------------


def build_figure(spec: FigureSpec, panels: list[PanelData]) -> Figure:
    """A matplotlib ``Figure`` in the study's layout: panels side by side, one line per run, x in epochs."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4 * len(panels), 4.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, series) in zip(axes, panels, strict=True):
        for line in series:
            draw_line(ax, line.line())
        ax.set_xticks(sorted({epoch for line in series for epoch in line.epochs}))
        ax.set_title(panel.title)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(panel.ylabel)
        if series:
            ax.legend(title=spec.legend_title, fontsize="small")
    figure.suptitle(f"Figure {spec.number}: {spec.caption}", fontsize="medium")
    return figure


def draw_line(ax: Axes, line: Line) -> None:
    """``line`` on ``ax``, labelled for the legend, its band (if any) shaded in the line's color."""
    (drawn,) = ax.plot(line.x, line.y, label=line.label, color=line.color)
    if line.low is not None and line.high is not None:
        ax.fill_between(line.x, line.low, line.high, color=drawn.get_color(), alpha=0.2, linewidth=0)


def panes_figure(panes: list[PaneLines], x_label: str, log_y: bool = False) -> Figure:
    """The app's panes as one figure, side by side (two rows from three panes on), one legend per panel."""
    from matplotlib.figure import Figure

    columns = 2 if len(panes) > 2 else len(panes)
    rows = math.ceil(len(panes) / columns)
    figure = Figure(figsize=(5.2 * columns, 3.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax, pane in zip(axes, panes, strict=False):
        for line in pane.lines:
            draw_line(ax, line)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(pane.title, fontsize="medium")
        ax.set_xlabel(x_label)
        ax.set_ylabel(pane.ylabel)
        if pane.lines:
            ax.legend(fontsize="small")
    for ax in axes[len(panes) :]:
        ax.set_visible(False)
    return figure


def figure_bytes(figure: Figure, format: str, dpi: int = 200) -> bytes:
    """``figure`` saved as ``format`` (one of :data:`FIGURE_FORMATS`); an SVG keeps its text as text, to edit."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        figure.savefig(buffer, format=format, dpi=dpi)
    return buffer.getvalue()


def png_bytes(figure: Figure, dpi: int = 80) -> bytes:
    return figure_bytes(figure, "png", dpi)


def save_png(figure: Figure, path: Path, dpi: int = 80) -> None:
    from engine.safe_io import atomic_write

    atomic_write(path, png_bytes(figure, dpi))


# -- text -----------------------------------------------------------------------------------------

MARKERS = "o*+x#@%&=$~^"
WIDTH, HEIGHT = 64, 14


def text_plot(panel: Panel, series: list[Series], width: int = WIDTH, height: int = HEIGHT) -> str:
    """A line plot in characters: each line its marker, joined point to point, a legend under it.

    The y axis is linear, as in the study's figures; its ends and middle are labelled, and the
    x axis shows the epochs. Where two lines cross, the one listed later is drawn on top.
    """
    points = [value for line in series for value in line.mean if math.isfinite(value)]
    epochs = sorted({epoch for line in series for epoch in line.epochs})
    lines = [f"{panel.title}  [{panel.ylabel}]"]
    if not points or not epochs:
        return "\n".join([*lines, "  (no values)"])
    low, high = min(points), max(points)
    if high == low:
        low, high = low - 0.5 * (abs(low) or 1), high + 0.5 * (abs(high) or 1)
    first, last = epochs[0], epochs[-1]
    span = max(last - first, 1)
    grid = [[" "] * width for _ in range(height)]

    def row_of(value: float) -> int:
        return height - 1 - round((value - low) / (high - low) * (height - 1))

    for index, line in enumerate(series):
        marker = MARKERS[index % len(MARKERS)]
        xs, ys = line.epochs, line.mean
        for column in range(width):
            x = first + column / (width - 1) * span
            y = _interpolate(xs, ys, x)
            if y is not None and math.isfinite(y):
                grid[row_of(y)][column] = marker
    labels = {0: high, (height - 1) // 2: (high + low) / 2, height - 1: low}
    label_width = max(len(_short(value)) for value in labels.values())
    for row in range(height):
        label = _short(labels[row]) if row in labels else ""
        lines.append(f"{label:>{label_width}} |{''.join(grid[row])}")
    axis = [" "] * width
    ticks = []
    for epoch in epochs:
        column = round((epoch - first) / span * (width - 1))
        axis[column] = "+"
        ticks.append((column, str(epoch)))
    lines.append(" " * label_width + " +" + "".join(axis).replace(" ", "-")[1:])
    tick_line = [" "] * (width + 2)
    for column, text in ticks:
        start = min(column, width - len(text))
        tick_line[start : start + len(text)] = text
    lines.append(" " * (label_width + 2) + "".join(tick_line).rstrip() + "   Epoch")
    lines.extend(f"  {MARKERS[i % len(MARKERS)]} {line.label}" for i, line in enumerate(series))
    return "\n".join(lines)


def text_figure(spec: FigureSpec, panels: list[PanelData]) -> str:
    """Every panel of a figure as a text plot, under the figure's caption."""
    title = f"Figure {spec.number}: {spec.caption}"
    return "\n\n".join([f"{title}\n{'=' * len(title)}", *(text_plot(panel, series) for panel, series in panels)])


def _interpolate(xs: list[int], ys: list[float], x: float) -> float | None:
    if not xs or x < xs[0] or x > xs[-1]:
        return None
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _short(value: float) -> str:
    return f"{value:.3g}"
