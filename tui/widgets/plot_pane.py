"""One plot pane: plotext draws a :class:`~tui.plotting.Figure`'s lines once, the cursor's layer is laid over them.

plotext redraws every line of a pane on each build (7–20 ms a pane here at 100 points a line), and a
cursor move changes none of them: only the cursor's vertical line, each run's marker and the
readout. So :class:`SafePlot` keeps the last drawing of its lines (:class:`Drawing`), keyed by
everything it depends on (size, theme, heading, x label, lines, x and y limits, ticks), and on
each frame lays the cursor's layer over it as plotext would have drawn it, cell by cell:

- plotext draws the vertical line before the data, so the line's ``│`` fills the cells of its
  column that no line touched, and the frame's x axes get ``┴`` (below) and ``┬`` (above) there;
- each marker goes last, over whatever is in its cell, in the figure's order.

A cell is ⌊½ + (w − 1)(v − v₀)/(v₁ − v₀)⌋ (:func:`tui.plotting.cell_of`). plotext takes the x
limits from the data and the vertical line when none are set; the drawing sets them to exactly
those (:func:`tui.plotting.data_limits`), so a cursor outside the data's x range makes a new
drawing (its limits change), and a cursor outside the canvas is drawn by plotext whole. With
a y zoom the figure's y window follows the cursor, so its key changes and plotext draws it again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

from rich.text import Text
from textual import events
from textual.app import RenderResult
from textual.message import Message
from textual_plotext import PlotextPlot

from tui.plotting import Figure, cell_of, data_limits

CURSOR_COLOR = "gray"
CURSOR_LINE = "│"
AXIS_BELOW, AXIS_ABOVE = "┴", "┬"  # plotext's x axes where a vertical line crosses them
NO_COLOR = "default"  # plotext's color and style that change nothing
EMPTY = (" ", NO_COLOR)  # a cell no line touched: plotext's space, no color


@dataclass(frozen=True)
class Drawing:
    """A pane as plotext drew it without the cursor's layer: its text, plotext's matrix of cells and their limits."""

    key: tuple[object, ...]
    text: Text
    matrix: Any  # plotext's matrix_class: marker, fullground, style and background per [row][column], row 0 at the bottom
    x_limits: tuple[float, float] | None
    y_limits: tuple[float, float] | None


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

    class Resized(Message):
        """The pane's size changed (the readout below the panes came or went): its figure was made for the old one."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.canvas: tuple[int, int, float, float] | None = None  # first column, width, x at its left and right ends
        self.figure: Figure | None = None
        self.heading = ""
        self.x_label = ""
        self.drawing: Drawing | None = None  # the last drawing of the lines, reused while its key holds

    def show(self, figure: Figure | None, heading: str, x_label: str = "") -> None:
        """Draw ``figure`` (None: only the heading) under ``heading`` from the next frame on."""
        self.figure, self.heading, self.x_label = figure, heading, x_label
        self.refresh()

    def _apply(self, x_limits: tuple[float, float] | None, with_cursor: bool) -> None:
        """Put the figure into plotext, all of it at once: every frame's ticks and points share one scale; without
        ``with_cursor``, only its lines (the cursor's layer goes over them, :meth:`_with_cursor`)."""
        plt, figure = self.plt, self.figure
        plt.clear_figure()
        plt.title(self.heading)
        if self.x_label:
            plt.xlabel(self.x_label)
        if figure is None:
            return
        for line in figure.lines:
            plt.plot(line.xs, line.ys, color=line.color, marker=line.marker)
        for mark in figure.marks if with_cursor else ():
            plt.scatter(mark.xs, mark.ys, color=mark.color, marker=mark.marker)
        if x_limits is not None:
            plt.xlim(*x_limits)
        if figure.y_limits is not None:
            plt.ylim(*figure.y_limits)
            plt.yticks(*figure.ticks)
            if figure.cursor is not None and with_cursor:
                plt.vertical_line(figure.cursor, color=CURSOR_COLOR)

    def render(self) -> RenderResult:
        try:
            return self._render_figure()
        except Exception as error:  # a drawing error must never end the app
            self.canvas, self.drawing = None, None
            return Text(f"This plot could not be drawn ({type(error).__name__}: {error}); the other panes go on.", style="red")

    def _render_figure(self) -> Text:
        """The figure: its lines' drawing (made again only when its key changed) with the cursor's layer over it."""
        figure = self.figure
        cursor, x_limits = self._cursor_and_x_limits()
        key = (
            self.size,
            self.app.theme,
            self.theme,
            self.heading,
            self.x_label,
            None if figure is None else (figure.lines, figure.y_limits, figure.ticks),
            x_limits,
        )
        if self.drawing is None or self.drawing.key != key:
            self.drawing = self._draw_lines(key, x_limits)
        drawing = self.drawing
        columns = drawing.matrix.Cols_canvas
        self.canvas = (columns.start, len(columns), *drawing.x_limits) if len(columns) and drawing.x_limits is not None else None
        layered = self._with_cursor(drawing, figure, cursor) if figure is not None else drawing.text
        return self.whole() if layered is None else layered  # None: the cursor's line falls outside the canvas

    def whole(self) -> Text:
        """The figure drawn by plotext all of it at once, its cursor's layer too (what the layered drawing must equal)."""
        self._apply(self._cursor_and_x_limits()[1], with_cursor=True)
        return self._plotext_text()

    def _cursor_and_x_limits(self) -> tuple[float | None, tuple[float, float] | None]:
        """The cursor plotext draws (only over a y range) and the x limits it takes: the figure's, else the least and
        greatest x of its lines and that cursor (:func:`tui.plotting.data_limits`)."""
        figure = self.figure
        if figure is None:
            return None, None
        cursor = figure.cursor if figure.y_limits is not None else None
        return cursor, figure.x_limits or data_limits(figure.lines, cursor)

    def _draw_lines(self, key: tuple[object, ...], x_limits: tuple[float, float] | None) -> Drawing:
        self._apply(x_limits, with_cursor=False)
        text = self._plotext_text()
        monitor = self.plt.monitor  # type: ignore[attr-defined]  # plotext's untyped figure sets it in __init__, unseen by mypy
        (left, right), (low, high) = monitor.xlim[0], monitor.ylim[0]
        return Drawing(
            key,
            text,
            monitor.matrix,
            None if None in (left, right) else (left, right),
            None if None in (low, high) else (low, high),
        )

    def _plotext_text(self) -> Text:
        """What plotext draws of the figure put into it, as Textual's plot widget renders it."""
        return cast(Text, super().render())  # PlotextPlot.render returns Text.from_ansi of plotext's canvas

    def _with_cursor(self, drawing: Drawing, figure: Figure, cursor: float | None) -> Text | None:
        """The drawing with the cursor's vertical line and the runs' markers put into plotext's cells as its build puts
        them, and the cells turned into text by plotext and Rich as before; None when the line falls outside the canvas."""
        base = drawing.matrix
        columns, rows = base.Cols_canvas, base.Rows_canvas
        cells: dict[tuple[int, int], tuple[str, Any, Any]] = {}  # (row, column) → character, color, style (None: kept)
        if cursor is not None and drawing.x_limits is not None:
            column = columns.start + cell_of(cursor, drawing.x_limits, len(columns))
            if column not in columns:
                return None
            for row in rows:
                if (base.marker[row][column], base.fullground[row][column]) == EMPTY:
                    cells[row, column] = (CURSOR_LINE, CURSOR_COLOR, None)
            for row, axis in ((rows.start - 1, AXIS_BELOW), (rows.stop, AXIS_ABOVE)):
                if 0 <= row < base.rows:
                    cells[row, column] = (axis, None, None)
        if drawing.x_limits is not None and drawing.y_limits is not None:
            for mark in figure.marks:
                column = columns.start + cell_of(mark.xs[0], drawing.x_limits, len(columns))
                row = rows.start + cell_of(mark.ys[0], drawing.y_limits, len(rows))
                if column in columns and row in rows:
                    cells[row, column] = (mark.marker, mark.color, NO_COLOR)
        if not cells:
            return drawing.text
        matrix = copy.copy(base)
        matrix.marker, matrix.fullground, matrix.style = (list(grid) for grid in (base.marker, base.fullground, base.style))
        for row in {row for row, _ in cells}:  # copy the rows that change; the drawing keeps its own
            matrix.marker[row], matrix.fullground[row], matrix.style[row] = (
                list(grid[row]) for grid in (base.marker, base.fullground, base.style)
            )
        for (row, column), (character, color, style) in cells.items():
            matrix.insert_element(column, row, character, color, style)
        return Text.from_ansi(matrix.set_canvas())  # as Textual's plot widget reads plotext's canvas

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

    def on_resize(self) -> None:
        self.post_message(self.Resized())
