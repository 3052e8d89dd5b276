"""The Setup form names the regularizer's number by what it is: a weight, or label smoothing's ε."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input, Label, Select

from engine.config.presets import build_run_config
from tests.conftest import settle, tiny_config, wait_for
from tui.widgets.setup_form import SetupForm

pytestmark = pytest.mark.asyncio


class FormApp(App):
    def __init__(self, corpus) -> None:
        super().__init__()
        self.corpus = corpus

    def compose(self) -> ComposeResult:
        yield SetupForm([str(self.corpus)], None, "cpu", id="form")


def weight_label(app: App) -> str:
    return str(app.query_one("#weight-field Label", Label).render())


async def test_label_smoothing_shows_and_sends_its_epsilon(tiny_corpus):
    app = FormApp(tiny_corpus)
    async with app.run_test(size=(100, 40)) as pilot:
        form = app.query_one(SetupForm)
        await wait_for(pilot, lambda: form.corpus is not None, "the corpus to load")
        assert weight_label(app) == "Weight"
        app.query_one("#regularizer", Select).value = "label-smoothing"
        app.query_one("#weight", Input).value = "0.1, 0.2"
        await settle(pilot)
        assert weight_label(app) == "Smoothing ε"
        assert "0.05, 0.1, 0.2" in app.query_one("#weight", Input).placeholder
        assert form.reading.valid, form.reading
        objectives = [build_run_config("x", form.reading.preset, overrides).objective for overrides in form.reading.overrides]
        assert [(objective.epsilon, objective.weight) for objective in objectives] == [(0.1, 0.0), (0.2, 0.0)]

        app.query_one("#weight", Input).value = "1"
        await settle(pilot)
        assert not form.reading.valid and "label smoothing's ε" in (form.reading.problem or "")

        app.query_one("#regularizer", Select).value = "kl"
        await settle(pilot)
        assert weight_label(app) == "Weight" and form.reading.valid


async def test_cloning_a_label_smoothing_run_fills_its_epsilon(tiny_corpus):
    app = FormApp(tiny_corpus)
    async with app.run_test(size=(100, 40)) as pilot:
        form = app.query_one(SetupForm)
        form.fill(tiny_config("ls", tiny_corpus, objective__regularizer="label-smoothing", objective__epsilon=0.05))
        await settle(pilot)
        assert app.query_one("#weight", Input).value == "0.05" and weight_label(app) == "Smoothing ε"
        assert "objective.epsilon" not in form.extra and "objective.weight" not in form.extra
