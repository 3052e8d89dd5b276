"""Snapshots of the main screen with a finished run reopened from a checkpoint trained here.

The run is trained with a fixed seed on CPU, so its metrics, plots and continuations are the
same on every run; nothing on these screens shows a time or a path. Regenerate with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the report before keeping them.
"""

from __future__ import annotations

import time

import pytest

from engine.trainer import Trainer
from tests.conftest import tiny_config
from tui.app import ExplorerApp

RUN = "kl-10"
SEED_TEXT = "the government"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_corpus):
    """A folder with one finished 3-epoch run (cross-entropy + KL, weight 10, seed 0)."""
    folder = tmp_path_factory.mktemp("snapshot-runs")
    config = tiny_config(RUN, tiny_corpus, objective__regularizer="kl", objective__weight=10.0, train__epochs=3, train__seed=0)
    events = list(Trainer.new(config, folder).events())
    assert type(events[-1]).__name__ == "RunFinished", events[-1]
    return folder


async def wait_for(pilot, condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


async def show_saved_run(pilot) -> None:
    """Wait for the saved run to be listed, show it (space in the runs list), wait for its history."""
    app = pilot.app
    await wait_for(pilot, lambda: app.session.get(RUN) is not None and app.runs_table.row_count == 1, "the saved run")
    await pilot.press("f5", "space")
    await wait_for(pilot, lambda: bool(app.session.get(RUN).series), "the run's metric history")


async def on_plots(pilot) -> None:
    await show_saved_run(pilot)
    await pilot.press("f3")
    await pilot.pause(0.5)  # the plots' redraw tick


async def on_generate(pilot) -> None:
    await show_saved_run(pilot)
    await pilot.press("f4", *SEED_TEXT, "enter", "down", "right")
    panel = pilot.app.generation
    await wait_for(pilot, lambda: (SEED_TEXT, RUN) in panel.results, "the continuation")
    await pilot.pause(0.2)


def make_app(tiny_corpus, checkpoints) -> ExplorerApp:
    return ExplorerApp(corpus_paths=[str(tiny_corpus)], checkpoints=str(checkpoints), device="cpu")


def test_plots_at_80x24(snap_compare, tiny_corpus, checkpoints):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(80, 24), run_before=on_plots)


def test_plots_at_160x48(snap_compare, tiny_corpus, checkpoints):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(160, 48), run_before=on_plots)


def test_generation_at_160x48(snap_compare, tiny_corpus, checkpoints):
    assert snap_compare(make_app(tiny_corpus, checkpoints), terminal_size=(160, 48), run_before=on_generate)
