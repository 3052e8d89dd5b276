"""The plots' maths, apart from any drawing: what a pane shows, computed from points alone (no Textual, no plotext).

:func:`pane_figure` turns each shown run's points into one :class:`Figure`: its lines (raw, and
smoothed), the y range with its ticks, the x range, the cursor and each run's marker point. A
pane draws exactly one figure per frame, so the ticks and the points of a frame always come from
the same scale. The rest are the pieces: downsampling, smoothing (:func:`ema`), tick positions
and labels, zoom windows, the nearest point to an x, and the grid of panes a size allows
(:func:`pane_grid`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

Points = list[tuple[float, float]]
RGB = tuple[int, int, int]

Y_TICKS = 5
MARKERS = ("•", "x", "+", "o", "*", "■", "◆", "▲", "#", "@")
FAINT = 0.4  # the raw line's color under smoothing: this share of the run's color
Y_ZOOM_STEP = 2.0
MIN_Y_ZOOM = Y_ZOOM_STEP**-12  # the narrowest y window, a share of the fitted range: finer, the 3-digit ticks would repeat
MIN_PANE_ROWS = 8  # a pane shorter than this has no room for its lines between title, frame and x ticks
MIN_PANE_COLUMNS = 30
LINE_RESOLUTION = 2  # points per cell kept when downsampling: braille lines draw 2 × 4 dots per cell


def downsample(points: Points, limit: int) -> Points:
    """At most ``limit`` points spread evenly over the series, the first and last kept."""
    if len(points) <= limit or limit < 2:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def ema(values: Sequence[float], alpha: float) -> list[float]:
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


def tick_count(height: int, with_xlabel: bool) -> int:
    """As many y ticks as fit two rows apart in a pane ``height`` rows high (title, frame, x ticks and label off).

    Ticks closer than that would share a row, and plotext would then show one of them at random.
    """
    rows = height - 4 - int(with_xlabel)
    return max(2, min(Y_TICKS, (rows + 1) // 2))


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


def zoom_x(
    positions: Sequence[float], x_range: tuple[float, float] | None, center: float | None, factor: float
) -> tuple[float, float] | None:
    """The x range after scaling ``x_range`` (None: every x) by ``factor`` around ``center`` (None: the range's end).

    The new range is [c − h, c + h] with h = factor·(x₁ − x₀)/2, cut to the first and last position;
    None (every x) when that is all of them, when it is empty, or for ``factor`` 0.
    """
    if factor == 0 or len(positions) < 2:
        return None
    low, high = x_range or (positions[0], positions[-1])
    middle = high if center is None else center
    half = (high - low) * factor / 2
    low, high = max(positions[0], middle - half), min(positions[-1], middle + half)
    return None if (low, high) == (positions[0], positions[-1]) or high <= low else (low, high)


def nearest(points: Points, x: float) -> tuple[float, float] | None:
    """The point whose x is nearest to ``x`` (points sorted by x), the earlier one on a tie."""
    return points[_nearest_index([px for px, _ in points], x)] if points else None


def _nearest_index(xs: Sequence[float], x: float) -> int:
    """The index of the x in ``xs`` (sorted, not empty) nearest to ``x``, the earlier one on a tie."""
    i = bisect_left(xs, x)
    return min((j for j in (i - 1, i) if 0 <= j < len(xs)), key=lambda j: abs(xs[j] - x))


def translate_x(pairs: Sequence[tuple[float, float]], x: float) -> float | None:
    """Given (x on one axis, x on another) for each point, where the point nearest to ``x`` sits on the other axis."""
    return float(min(pairs, key=lambda pair: abs(pair[0] - x))[1]) if pairs else None


def cell_of(value: float, limits: tuple[float, float], cells: int) -> int:
    """The cell plotext draws ``value`` in, of ``cells`` spanning ``limits`` (v₀, v₁): ⌊½ + (n − 1)(v − v₀)/(v₁ − v₀)⌋,
    the fraction rounded to 8 decimals first, as plotext does (so that 9.999999999 falls in cell 10)."""
    low, high = limits
    return math.floor(round(0.5 + (cells - 1) * (value - low) / (high - low), 8))


def data_limits(lines: Sequence[Line], cursor: float | None) -> tuple[float, float] | None:
    """The x limits plotext takes when none are set: the least and the greatest x of the lines and the cursor's
    vertical line; a single x value v gives (v/2, 3v/2), and 0 gives (−1, 1). None without any x."""
    xs = [x for line in lines for x in line.xs] + ([] if cursor is None else [cursor])
    if not xs:
        return None
    low, high = min(xs), max(xs)
    if low != high:
        return low, high
    return (0.5 * low, 1.5 * low) if low != 0 else (-1.0, 1.0)


def pane_grid(width: int, height: int, panes: int) -> tuple[int, int]:
    """(columns, rows) of the grid that shows the most of ``panes`` panes, each at least ``MIN_PANE_ROWS`` rows
    and ``MIN_PANE_COLUMNS`` columns, in an area ``width`` × ``height``; at least one pane, however small."""
    columns = max(1, min(panes, 2, width // MIN_PANE_COLUMNS))
    rows = max(1, min(math.ceil(panes / columns), height // MIN_PANE_ROWS))
    return columns, rows


def marker(number: int) -> str:
    """The marker of the run numbered ``number`` (from 1), as the legend and readout show it."""
    return MARKERS[(number - 1) % len(MARKERS)]


def hex_to_rgb(color: str) -> RGB:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def faint(color: str) -> RGB:
    red, green, blue = (round(channel * FAINT) for channel in hex_to_rgb(color))
    return red, green, blue


@dataclass(frozen=True)
class Band:
    """A seed group's spread around its mean line: the low and high y at each x (raw values)."""

    xs: list[float]
    low: list[float]
    high: list[float]


@dataclass(frozen=True)
class Series:
    """One run's points in a pane (x on the pane's axis, raw y), with how the run is drawn; a seed group's mean, with
    its ``band``."""

    legend: str
    color: str
    marker: str
    points: Points
    band: Band | None = None


BAND_MARKER = "·"


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


def _band_line(band: Band, color: str, log: bool, x_range: tuple[float, float], width: int) -> tuple[Line, list[float]] | None:
    """The band's shaded zigzag (:func:`band_path`) inside ``x_range`` in the faint ``color``, and the y values it spans."""
    keep = [
        i
        for i, x in enumerate(band.xs)
        if x_range[0] <= x <= x_range[1] and all(math.isfinite(v) and (v > 0 or not log) for v in (band.low[i], band.high[i]))
    ]
    if not keep:
        return None
    low, high = ([math.log10(values[i]) if log else values[i] for i in keep] for values in (band.low, band.high))
    xs, ys = band_path([band.xs[i] for i in keep], low, high, width)
    return Line(xs, ys, faint(color), BAND_MARKER), low + high


@dataclass(frozen=True)
class Line:
    """A line to draw: its points, color and marker (``braille`` for a plain line)."""

    xs: list[float]
    ys: list[float]
    color: RGB
    marker: str = "braille"


@dataclass
class Figure:
    """Everything one pane draws in one frame; y values are log10(y) under a log axis."""

    lines: list[Line] = field(default_factory=list)
    marks: list[Line] = field(default_factory=list)  # each run's marker, at the readout's point (or its last one)
    drawn: dict[str, Points] = field(default_factory=dict)  # legend → the raw points drawn
    y_limits: tuple[float, float] | None = None
    ticks: tuple[list[float], list[str]] = ([], [])
    x_limits: tuple[float, float] | None = None
    cursor: float | None = None


def pane_figure(
    series: Sequence[Series],
    *,
    log: bool,
    smoothing: float,
    x_range: tuple[float, float] | None,
    cursor: float | None,
    y_zoom: float | None,
    width: int,
    tick_rows: int,
) -> Figure:
    """The figure of one pane ``width`` cells wide: each run's finite points inside ``x_range`` (positive ones under
    ``log``), downsampled to :data:`LINE_RESOLUTION` per cell, as a line (under smoothing, a faint raw line and the
    :func:`ema` in the run's color), the run's marker at its point nearest to ``cursor`` (else its last), and y
    fitted to the points drawn (a group's band too, shaded first): [min, max] (±0.5 when flat), then the ``y_zoom`` share of it (:func:`zoom_window`)
    centred on the first run's value at the cursor (or its latest).
    """
    figure = Figure(x_limits=x_range, cursor=cursor)
    low_x, high_x = x_range or (-math.inf, math.inf)
    ys: list[float] = []
    center: float | None = None
    for run in series:
        points = [(x, y) for x, y in run.points if math.isfinite(y) and (y > 0 or not log) and low_x <= x <= high_x]
        if not points:
            continue
        if run.band is not None:
            band = _band_line(run.band, run.color, log, (low_x, high_x), width)
            if band is not None:
                figure.lines.insert(0, band[0])  # under every line, so each mean stays visible
                ys.extend(band[1])
        figure.drawn[run.legend] = points = downsample(points, max(2, LINE_RESOLUTION * width))
        xs = [x for x, _ in points]
        raw = [math.log10(y) if log else y for _, y in points]
        shown = ema(raw, smoothing) if smoothing else raw
        if smoothing:
            figure.lines.append(Line(xs, raw, faint(run.color)))
        figure.lines.append(Line(xs, shown, hex_to_rgb(run.color)))
        index = _nearest_index(xs, cursor) if cursor is not None else len(xs) - 1
        figure.marks.append(Line([xs[index]], [shown[index]], hex_to_rgb(run.color), run.marker))
        ys.extend(raw)
        if center is None:
            center = raw[index]
    if ys:
        low, high = min(ys), max(ys)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        if y_zoom is not None and center is not None:
            low, high = zoom_window(low, high, y_zoom, center)
        figure.y_limits = (low, high)
        figure.ticks = y_ticks(low, high, log, tick_rows)
    return figure
