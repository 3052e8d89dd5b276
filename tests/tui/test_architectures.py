"""A GRU or Transformer run in the app, as an LSTM run is: chosen in the form, trained, plotted, generated from, shown in details."""

from __future__ import annotations

import pytest
from textual.widgets import Select

from engine.runs.checkpoint import load_run
from tests.conftest import wait_for
from tests.tui.test_app import continue_in_app, make_app, type_into
from tui.screens.run_detail import RunDetail

pytestmark = pytest.mark.asyncio


async def test_a_transformer_chosen_in_the_form_trains_plots_generates_and_shows_its_architecture(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        app.query_one("#arch", Select).value = "transformer"
        await type_into(pilot, "#epochs", "1")
        await wait_for(pilot, lambda: app.form.ready, "the form to be ready")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: len(app.session.runs) == 1, "the run to be queued")
        run = next(iter(app.session.runs.values()))
        assert run.config.model.arch == "transformer"
        await wait_for(pilot, lambda: app.run_status(run.name) == "finished", "the run to finish")
        saved = load_run(tmp_path, run.name)
        label = app.plots.legend(run)
        await wait_for(pilot, lambda: app.plots.drawn.get("val-loss", {}).get(label), "the plots' redraw")
        assert app.plots.drawn["val-loss"][label] == [(1.0, pytest.approx(saved.record.metrics["val_loss"]))]

        assert len((await continue_in_app(pilot, run.name, "the government")).words) == 10

        await pilot.press("f5")
        app.runs_table.move_cursor(row=app.runs_table.get_row_index(run.name))
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetail) and app.screen.records, "the run details")
        assert app.screen.rows()["model.arch"] == ["transformer"]


async def test_the_transformer_preset_fills_the_architecture(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        app.query_one("#preset", Select).value = "transformer"
        await wait_for(pilot, lambda: app.query_one("#arch", Select).value == "transformer", "the preset's architecture")
        assert app.query_one("#loss", Select).value == "ce"
        app.query_one("#arch", Select).value = "gru"
        await wait_for(pilot, lambda: app.form.reading.problem is not None, "the form to refuse a tied GRU")
        assert "--hidden-size (256) equal to --embedding-dim (64) in a recurrent network (gru)" in app.form.reading.problem
