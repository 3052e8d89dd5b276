"""Snapshots of the app's screens over hand-made runs: every number on them is written by the test.

The runs' ``run.json`` and ``metrics.jsonl`` come from :func:`tests.conftest.write_hand_made_run`
(round numbers, no training) and generation is stubbed, so the screens are the same on any torch
build. Nothing shown is a time or a path. Regenerate with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the report before keeping them.
"""

from __future__ import annotations

import pytest

from tests.conftest import wait_for, write_hand_made_run
from tui.app import ExplorerApp

RUN = "kl-10"
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
    await wait_for(pilot, lambda: app.session.get(RUN) is not None and app.runs_table.row_count == 1, "the saved run")
    await pilot.press("f5", "space")
    await wait_for(pilot, lambda: bool(app.session.get(RUN).series), "the run's metric history")
    await wait_for(pilot, lambda: str(app.runs_table.get_cell(RUN, "best_val_loss")) != "–", "the runs list to show the history's best")


async def on_plots(pilot) -> None:
    await show_saved_run(pilot)
    await pilot.press("f3")
    plots = pilot.app.plots
    await wait_for(pilot, lambda: all(plots.drawn.get(pane) for pane in ("entropy", "kl", "train-loss", "val-loss")), "the plots")
    await pilot.pause()


async def on_generate(pilot) -> None:
    await show_saved_run(pilot)
    await pilot.press("f4", *SEED_TEXT, "enter", "down", "right")
    panel = pilot.app.generation
    await wait_for(pilot, lambda: panel._current(SEED_TEXT, panel.columns[0]) is not None, "the continuation")
    await pilot.pause()


def make_app(tiny_corpus, checkpoints) -> ExplorerApp:
    return ExplorerApp(corpus_paths=[str(tiny_corpus)], checkpoints=str(checkpoints), device="cpu")


def test_plots_at_80x24(snap_compare, tiny_corpus, checkpoints):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(80, 24), run_before=on_plots)


def test_plots_at_160x48(snap_compare, tiny_corpus, checkpoints):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(160, 48), run_before=on_plots)


def test_generation_at_160x48(snap_compare, tiny_corpus, checkpoints, stub_generation):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(160, 48), run_before=on_generate)
