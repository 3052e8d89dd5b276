"""Snapshots of the app's screens over hand-made runs: every number on them is written by the test.

The runs' ``run.json`` and ``metrics.jsonl`` come from :func:`tests.conftest.write_hand_made_run`
(round numbers, no training) and generation is stubbed, so the screens are the same on any torch
build. Nothing shown is a time or a path. Regenerate with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the report before keeping them.
"""

from __future__ import annotations

import pytest

from tests.conftest import wait_for, write_hand_made_run
from tui.app import ExplorerApp
from tui.screens.run_detail import RunDetail

RUN = "kl-10"
OTHER = "kl-100"
SEED_TEXT = "the government"


@pytest.fixture
def checkpoints(tmp_path):
    """One finished 3-epoch run (cross-entropy + KL, weight 10) written by hand."""
    folder = tmp_path / "checkpoints"
    write_hand_made_run(folder, RUN, epochs=3, objective__regularizer="kl", objective__weight=10.0)
    return folder


async def show_saved_run(pilot) -> None:
    """Wait for the saved run to be listed, show it (space in the runs list), wait for its history."""
    app = pilot.app
    await wait_for(pilot, lambda: app.session.get(RUN) is not None, "the saved run")
    await pilot.press("f5")
    app.runs_table.highlight(RUN)
    await pilot.press("space")
    await wait_for(pilot, lambda: bool(app.session.get(RUN).series), "the run's metric history")
    await wait_for(
        pilot, lambda: str(app.runs_table.get_cell(RUN, "best_val_loss")) != "–", "the runs list to show the history's best"
    )


async def on_plots(pilot) -> None:
    await show_saved_run(pilot)
    await pilot.press("f3")
    plots = pilot.app.plots
    await wait_for(pilot, lambda: all(plots.drawn.get(pane.id) for pane in plots.panes) and not plots.pending, "the plots")
    await pilot.pause()


async def on_plots_at_80x24(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.runs_table.row_count == 6, "the saved runs")
    await on_plots(pilot)
    assert app.plots.grid_shape == (2, 1) and all(
        pilot.app.query_one(f"#plot-{pane.id}").size.height >= 8 for pane in app.plots.panes
    )


async def on_generate(pilot) -> None:
    await show_saved_run(pilot)
    await pilot.press("f4", *SEED_TEXT, "enter", "down", "right")
    panel = pilot.app.generation
    await wait_for(pilot, lambda: panel._current(SEED_TEXT, panel.columns[0]) is not None, "the continuation")
    await pilot.pause()


async def on_plots_with_cursor(pilot) -> None:
    await on_plots(pilot)
    await pilot.press("right", "right", "right", "right")  # 0.25, 0.5, 0.75, 1
    await wait_for(pilot, lambda: pilot.app.plots.cursor == 1.0 and not pilot.app.plots.pending, "the cursor's redraw")
    await pilot.pause()


async def on_plots_by_wall_time_zoomed(pilot) -> None:
    """x by training wall time, the cursor on the last x, the training loss pane's y zoomed in twice."""
    await on_plots(pilot)
    await pilot.press("x", "x", "end", "right_square_bracket", "right_square_bracket", "up", "up")
    plots = pilot.app.plots
    await wait_for(
        pilot, lambda: plots.cursor == 127.5 and plots.y_zoom == {"train-loss": 0.25} and not plots.pending, "the redraw"
    )
    pilot.app.clear_notifications()  # the x axis toasts
    await pilot.pause()


async def on_details(pilot) -> None:
    """Both runs shown, the first's details opened: the two configs side by side."""
    app = pilot.app
    await wait_for(pilot, lambda: all(name in app.runs_table.rows for name in (RUN, OTHER)), "the saved runs")
    await pilot.press("f5")
    for name in (RUN, OTHER):
        app.runs_table.move_cursor(row=app.runs_table.get_row_index(name))
        await pilot.press("space")
    app.runs_table.move_cursor(row=app.runs_table.get_row_index(RUN))
    await pilot.press("i")
    await wait_for(pilot, lambda: isinstance(app.screen, RunDetail) and bool(app.screen.records), "the run details")
    await pilot.pause()


def make_app(tiny_corpus, checkpoints) -> ExplorerApp:
    return ExplorerApp(corpus_paths=[str(tiny_corpus)], checkpoints=str(checkpoints), device="cpu")


def test_plots_at_80x24(snap_compare, tiny_corpus, checkpoints):
    """The default SSH terminal, with a full runs list: two panes side by side, each tall enough to read (``m`` pages)."""
    for weight in (1.0, 2.0, 3.0, 4.0, 5.0):
        write_hand_made_run(checkpoints, f"kl-{weight:g}", epochs=3, objective__regularizer="kl", objective__weight=weight)
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(80, 24), run_before=on_plots_at_80x24)


def test_plots_at_160x48(snap_compare, tiny_corpus, checkpoints):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(160, 48), run_before=on_plots)


def test_generation_at_160x48(snap_compare, tiny_corpus, checkpoints, stub_generation):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(160, 48), run_before=on_generate)


def test_plots_cursor_readout_at_100x30(snap_compare, tiny_corpus, checkpoints):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(100, 30), run_before=on_plots_with_cursor)


def test_plots_by_wall_time_with_a_y_zoom_at_100x30(snap_compare, tiny_corpus, checkpoints):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(100, 30), run_before=on_plots_by_wall_time_zoomed)


def test_run_details_compared_at_120x40(snap_compare, tiny_corpus, checkpoints):
    write_hand_made_run(checkpoints, OTHER, epochs=3, objective__regularizer="kl", objective__weight=100.0, model__hidden_size=32)
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(120, 40), run_before=on_details)
