"""The Textual app driven by Textual's Pilot on a tiny real corpus: real runs, real checkpoints."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from textual import events
from textual.widgets import Button, Input, Select

from tests.conftest import tiny_config, wait_for

from engine.checkpoint import load_run
from engine.generate import Continuation
from tui.app import ExplorerApp
from tui.screens.confirm_quit import ConfirmQuit
from tui.widgets.plots import PANES

pytestmark = pytest.mark.asyncio


async def wait_for_exit(app: ExplorerApp, timeout: float = 60.0) -> None:
    """After a quit: wait until the app has called exit (its runs stopped and saved)."""
    deadline = time.monotonic() + timeout
    while app.return_code is None:
        assert time.monotonic() < deadline, f"the app did not exit within {timeout:.0f} s"
        await asyncio.sleep(0.05)


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus a form field, clear it and type ``text`` key by key."""
    field = pilot.app.query_one(selector, Input)
    field.focus()
    field.value = ""
    await pilot.press(*text)


def make_app(corpus, checkpoints) -> ExplorerApp:
    return ExplorerApp(corpus_paths=[str(corpus)], checkpoints=str(checkpoints), device="cpu")


async def start_long_run(pilot, app: ExplorerApp, corpus, name: str) -> None:
    """A run far longer than the test, started through the public API, seen training."""
    app.start_runs([tiny_config(name, corpus, train__epochs=500)])
    await wait_for(pilot, lambda: app.run_status(name) == "training" and app.session.get(name).progress > 0, f"{name} to train")


async def test_form_run_reaches_plots_and_generation(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        app.query_one("#regularizer", Select).value = "entropy"
        await type_into(pilot, "#weight", "0.5")
        await type_into(pilot, "#epochs", "1")
        await type_into(pilot, "#train-seed", "3")
        await pilot.pause()
        assert not app.query_one("#train", Button).disabled
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: len(app.session.runs) == 1, "the run to be queued")
        run = next(iter(app.session.runs.values()))
        assert run.config.objective.regularizer == "entropy" and run.config.objective.weight == 0.5
        assert run.config.train.epochs == 1 and run.config.train.seed == 3
        await wait_for(pilot, lambda: app.run_status(run.name) == "finished", "the run to finish")
        await pilot.pause(0.5)  # the plots' redraw tick

        drawn = app.plots.drawn
        label = app.plots.legend(run)
        saved = load_run(tmp_path, run.name)
        assert drawn["val-loss"][label] == [(1.0, pytest.approx(saved.record.metrics["val_loss"]))]
        assert drawn["train-loss"][label][-1][0] == pytest.approx(1.0)
        assert len(drawn["entropy"][label]) == len(run.series["train_entropy"]) >= 1
        entropy_pane = next(pane for pane in PANES if pane.id == "entropy")
        assert app.plots.pane_title(entropy_pane, [run]) == "entropy (softmax) · training windows"

        await pilot.press("f4")
        await pilot.press(*"the government", "enter")
        panel = app.generation
        await wait_for(pilot, lambda: isinstance(panel.results.get(("the government", run.name), (None, None))[1], Continuation),
                       "the continuation")
        continuation = panel.results[("the government", run.name)][1]
        assert len(continuation.words) == 10
        assert set(continuation.words) <= set(saved.record.vocab)
        cell = str(panel.query_one("#continuations").get_cell("the government", run.name))
        assert continuation.text in cell
        assert "| the government |" in panel.markdown()


async def test_invalid_weights_keep_train_disabled_with_the_reason(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        train = app.query_one("#train", Button)
        reason = app.query_one("#weight-reason")
        for bad in ("-1", "abc", "nan", "1, -2"):
            await type_into(pilot, "#weight", bad)
            await pilot.pause()
            assert train.disabled, bad
            assert reason.has_class("-shown")
            assert "Weight" in str(reason.render()) and "finite value ≥ 0" in str(reason.render())
            assert app.query_one("#weight", Input).has_class("-invalid")
        await pilot.press("ctrl+t")
        assert app.session.runs == {}

        await type_into(pilot, "#weight", "1e-7, 1, 10, 100")
        await pilot.pause()
        assert not train.disabled
        assert not reason.has_class("-shown")
        assert "sweep of 4 runs" in str(app.query_one("#form-status").render())

        await type_into(pilot, "#epochs", "0")
        await pilot.pause()
        assert train.disabled
        assert "train.epochs" in str(app.query_one("#epochs-reason").render())


async def test_stop_saves_a_loadable_checkpoint_and_resume_continues(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_long_run(pilot, app, tiny_corpus, "stop-me")
        await pilot.press("f5", "x")
        await wait_for(pilot, lambda: app.run_status("stop-me") == "stopped", "the run to stop")
        stopped = load_run(tmp_path, "stop-me")
        assert stopped.record.status == "stopped" and stopped.record.step > 0

        await pilot.press("r")
        await wait_for(pilot, lambda: app.session.get("stop-me").progress * stopped.record.config.train.epochs
                       * stopped.record.steps_per_epoch > stopped.record.step, "the resumed run to train further")
        await pilot.press("x")
        await wait_for(pilot, lambda: app.run_status("stop-me") == "stopped", "the resumed run to stop")
        assert load_run(tmp_path, "stop-me").record.step > stopped.record.step


async def test_quit_while_training_asks_then_saves_a_checkpoint(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_long_run(pilot, app, tiny_corpus, "quit-me")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), "the quit confirmation")
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmQuit), "the confirmation to close")
        assert app.run_status("quit-me") == "training"
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), "the quit confirmation")
        await pilot.press("y")
        await wait_for_exit(app)
    record = load_run(tmp_path, "quit-me").record
    assert record.status == "stopped" and record.step > 0


async def test_sigterm_stops_runs_and_exits(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_long_run(pilot, app, tiny_corpus, "term-me")
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            pytest.skip("the app could not install its SIGTERM handler here (not the main thread)")
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for_exit(app)
    assert load_run(tmp_path, "term-me").record.status == "stopped"


# -- Keys in one write: what the terminal driver does with a burst is post each key to the app at once --


def burst(app: ExplorerApp, *keys: str) -> None:
    """Post ``keys`` to the app without letting it run in between, as the driver does for one write."""
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))


async def test_editing_keys_in_one_write_apply_in_order(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        weight = app.query_one("#weight", Input)
        for attempt in range(5):
            app.screen.set_focus(weight)
            await pilot.pause()
            burst(app, "end", *["backspace"] * 6, "2", "4")
            await wait_for(pilot, lambda: weight.value in ("24", "42", ""), "the keys to land", timeout=10)
            await pilot.pause(0.2)
            assert weight.value == "24", f"attempt {attempt}: {weight.value!r}"
        assert "Ready: 1 run" in str(app.query_one("#form-status").render())


async def test_two_tab_keys_in_one_write_end_on_the_second(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        for first, second, tab in (("f4", "f3", "plots"), ("f3", "f4", "generate"), ("f4", "f2", "setup"), ("f2", "f4", "generate")):
            burst(app, first, second)
            await pilot.pause(0.3)
            assert app.tabs.active == tab, (first, second)
            assert app.tabs.get_pane(tab) in app.focused.ancestors_with_self
