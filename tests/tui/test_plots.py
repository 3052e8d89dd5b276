"""The plots' arithmetic (:mod:`tui.plotting`): smoothing, ticks, zooms, the grid a size allows, a pane's figure."""

from __future__ import annotations

import math

import pytest

from tui.plotting import (
    MIN_PANE_ROWS,
    Series,
    compact,
    downsample,
    ema,
    hex_to_rgb,
    nearest,
    pane_figure,
    pane_grid,
    translate_x,
    y_ticks,
    zoom_x,
)


def test_ema_is_debiased_and_compact_numbers_are_short():
    assert ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])
    assert ema([0.0, 10.0], 0.5) == pytest.approx([0.0, (0.5 * 0.0 * 0.5 + 0.5 * 10.0) / (1 - 0.25)])
    assert ema([3.0, 4.0], 0.0) == [3.0, 4.0]
    assert [compact(v) for v in (0.000285946, 6.25, 123456.0, 0.0, 1e-3, 9999.0)] == [
        "2.86e-4",
        "6.25",
        "1.23e5",
        "0",
        "0.001",
        "1e4",
    ]


def test_log_ticks_are_labelled_with_y_itself():
    positions, labels = y_ticks(-4.0, 0.0, log=True)
    assert positions == [-4.0, -3.0, -2.0, -1.0, 0.0]
    assert labels == ["1e-4", "0.001", "0.01", "0.1", "1"]


def test_nearest_point_prefers_the_earlier_on_a_tie():
    points = [(0.5, 1.0), (1.0, 2.0), (1.5, 3.0)]
    assert nearest(points, 1.25) == (1.0, 2.0)
    assert nearest(points, 1.3) == (1.5, 3.0)
    assert nearest(points, 9.0) == (1.5, 3.0)
    assert nearest([], 1.0) is None


@pytest.mark.parametrize(
    ("size", "shape"),
    [
        ((160, 40), (2, 2)),  # four panes, 20 rows each
        ((80, 16), (2, 2)),  # exactly 8 rows each
        ((80, 15), (2, 1)),  # 80×24 with a full runs list: two side by side, each as tall as the area
        ((50, 30), (1, 3)),  # too narrow for two across: stacked, three to a page
        ((50, 10), (1, 1)),
        ((20, 5), (1, 1)),  # however small, one pane
    ],
)
def test_the_grid_gives_every_pane_at_least_eight_rows(size, shape):
    assert pane_grid(*size, panes=4) == shape
    _columns, rows = shape
    assert rows == 1 or size[1] // rows >= MIN_PANE_ROWS


def test_x_zoom_halves_around_the_cursor_and_whole_means_none():
    positions = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert zoom_x(positions, None, 2.0, 0.5) == (1.0, 3.0)
    assert zoom_x(positions, None, None, 0.5) == (3.0, 4.0)  # around the latest x, cut to the last position
    assert zoom_x(positions, (1.0, 3.0), 2.0, 2.0) is None  # back to every x
    assert zoom_x(positions, (1.0, 3.0), 2.0, 0) is None and zoom_x([1.0], None, 1.0, 0.5) is None


def test_translate_x_takes_the_nearest_points_other_coordinate():
    assert translate_x([(0.5, 10.0), (1.0, 20.0)], 0.9) == 20.0 and translate_x([], 1.0) is None


def test_downsampling_keeps_the_ends():
    points = [(float(i), float(i)) for i in range(101)]
    assert downsample(points, 5) == [(0.0, 0.0), (25.0, 25.0), (50.0, 50.0), (75.0, 75.0), (100.0, 100.0)]


RUNS = [
    Series("#1", "#4fc3f7", "•", [(1.0, 100.0), (2.0, 10.0), (3.0, 1.0)]),
    Series("#2", "#ffb74d", "x", [(1.0, 50.0), (2.0, -1.0), (3.0, math.inf), (4.0, 5.0)]),
]


def figure(**overrides):
    settings = {"log": False, "smoothing": 0.0, "x_range": None, "cursor": None, "y_zoom": None, "width": 40, "tick_rows": 5}
    return pane_figure(RUNS, **{**settings, **overrides})


def test_a_figure_draws_lines_and_puts_each_runs_marker_at_the_cursor_or_its_last_point():
    plain = figure()
    assert [(line.marker, line.xs) for line in plain.lines] == [("braille", [1.0, 2.0, 3.0]), ("braille", [1.0, 2.0, 4.0])]
    assert [(mark.marker, mark.xs, mark.ys) for mark in plain.marks] == [("•", [3.0], [1.0]), ("x", [4.0], [5.0])]
    assert plain.y_limits == (-1.0, 100.0) and plain.ticks[1] == ["-1", "24.2", "49.5", "74.8", "100"]
    at_cursor = figure(cursor=1.9)
    assert [(mark.xs, mark.ys) for mark in at_cursor.marks] == [([2.0], [10.0]), ([2.0], [-1.0])]
    smoothed = figure(smoothing=0.6)
    assert len(smoothed.lines) == 4 and smoothed.lines[1].color == hex_to_rgb("#4fc3f7")  # faint raw, then the EMA


def test_a_log_figure_takes_its_ticks_from_the_same_scale_as_its_points():
    log = figure(log=True)
    assert log.drawn["#2"] == [(1.0, 50.0), (4.0, 5.0)]  # the negative and infinite points are left out
    assert log.y_limits == (0.0, 2.0) and log.lines[0].ys == [2.0, 1.0, 0.0]
    positions, labels = log.ticks
    assert positions == [0.0, 0.5, 1.0, 1.5, 2.0] and labels == ["1", "3.16", "10", "31.6", "100"]


def test_a_y_zoom_centres_on_the_first_runs_value_at_the_cursor_inside_the_fit():
    assert figure(y_zoom=0.5, cursor=2.0).y_limits == (-1.0, 49.5)  # half of -1 … 100 around 10, shifted up into the fit
    assert figure(y_zoom=0.5, cursor=1.0).y_limits == (49.5, 100.0)  # around 100, shifted down
