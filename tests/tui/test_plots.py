"""The plots' arithmetic: smoothing, compact tick labels, log ticks, the cursor's nearest point."""

from __future__ import annotations

import pytest

from tui.widgets.plots import compact, ema, nearest, y_ticks


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
