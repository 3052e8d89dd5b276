"""The Textual app driven by Textual's Pilot on a tiny real corpus: real runs, real checkpoints."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import time

import pytest
from textual import events
from textual.command import CommandList
from textual.widgets import Button, DataTable, Footer, Input, Select, Static, Switch

from engine.generate import Continuation
from engine.jobs.controller import Controller
from engine.runs.checkpoint import RunDirectory, load_run
from tests.conftest import hand_made_metrics, settle, tiny_config, wait_for, write_hand_made_run
from tui.app import ExplorerApp
from tui.screens.confirm_quit import ConfirmQuit
from tui.screens.help import HelpScreen
from tui.screens.run_detail import RunDetail
from tui.session import Point
from tui.widgets.generation import SEED_CELL_WIDTH
from tui.widgets.plots import PANES, MetricPlots
from tui.widgets.runs_table import COLUMNS, RunsTable

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


async def continue_in_app(pilot, run_name: str, seed_text: str) -> Continuation:
    """Type a seed text on the Generate tab and wait for the run's continuation of it."""
    await pilot.press("f4")
    await pilot.press(*seed_text, "enter")
    panel = pilot.app.generation
    await wait_for(
        pilot,
        lambda: isinstance(panel.results.get((seed_text, run_name), (None, None))[1], Continuation),
        "the continuation",
    )
    continuation: Continuation = panel.results[(seed_text, run_name)][1]
    return continuation


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
        label = app.plots.legend(run)
        await wait_for(pilot, lambda: app.plots.drawn.get("val-loss", {}).get(label), "the plots' redraw")
        drawn = app.plots.drawn
        saved = load_run(tmp_path, run.name)
        assert drawn["val-loss"][label] == [(1.0, pytest.approx(saved.record.metrics["val_loss"]))]
        assert drawn["train-loss"][label][-1][0] == pytest.approx(1.0)
        assert len(drawn["entropy"][label]) == len(run.series["train_entropy"]) >= 1
        entropy_pane = next(pane for pane in PANES if pane.id == "entropy")
        assert app.plots.pane_title(entropy_pane, [run]) == "entropy (softmax) · training windows"

        continuation = await continue_in_app(pilot, run.name, "the government")
        panel = app.generation
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

        app.query_one("#regularizer", Select).value = "kl"
        await type_into(pilot, "#weight", "1e-7, 1, 10, 100")
        await pilot.pause()
        assert not train.disabled
        assert not reason.has_class("-shown")
        assert "grid of 4 runs (4 weights × 1 seed)" in str(app.query_one("#form-status").render())

        await type_into(pilot, "#epochs", "0")
        await pilot.pause()
        assert train.disabled
        assert str(app.query_one("#epochs-reason").render()) == "Epochs '0' is not a whole number from 1 to 100000."


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ("#epochs", "-2", "Epochs '-2' is not a whole number from 1 to 100000."),
        ("#batch-size", "0", "Batch size '0' is not a whole number from 1 to 65536."),
        ("#lr", "0", "Learning rate '0' is not a finite number > 0."),
        ("#lr", "inf", "Learning rate 'inf' is not a finite number > 0."),
        ("#train-seed", "99999999999999999999999", "Training seed '99999999999999999999999' is not a whole number from "),
    ],
)
async def test_number_fields_refuse_in_plain_words(tiny_corpus, tmp_path, field, text, reason):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        await type_into(pilot, field, text)
        await pilot.pause()
        shown = str(app.query_one(f"{field}-reason").render())
        assert shown.startswith(reason) and "Setting" not in shown and "Input should" not in shown
        assert shown.endswith("9223372036854775807.") or field != "#train-seed"
        assert app.query_one("#train", Button).disabled
        await pilot.press("ctrl+t")
        assert app.session.runs == {}


async def test_a_weight_list_needs_a_regularizer(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        app.query_one("#regularizer", Select).value = "none"
        await type_into(pilot, "#weight", "1,2,3")
        await pilot.pause()
        assert app.query_one("#train", Button).disabled
        assert "Regularizer is none: choose a regularizer, or give one weight" in str(app.query_one("#weight-reason").render())
        await pilot.press("ctrl+t")
        assert app.session.runs == {}
        app.query_one("#regularizer", Select).value = "kl"
        await pilot.pause()
        assert "grid of 3 runs (3 weights × 1 seed)" in str(app.query_one("#form-status").render())


async def test_weights_times_seeds_is_one_form_entry(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        app.query_one("#regularizer", Select).value = "kl"
        await type_into(pilot, "#weight", "1, 10, 100")
        await type_into(pilot, "#train-seed", "0-2")
        await pilot.pause()
        assert "Ready: a grid of 9 runs (3 weights × 3 seeds)" in str(app.query_one("#form-status").render())
        points = [(o["objective.weight"], o["train.seed"]) for o in app.form.reading.overrides]
        assert points == [(w, s) for w in (1.0, 10.0, 100.0) for s in (0, 1, 2)]
        assert app.form.reading.varying == ("objective.weight", "train.seed")
        await type_into(pilot, "#train-seed", "2-0")
        await pilot.pause()
        assert app.query_one("#train", Button).disabled
        assert "Training seed range '2-0' runs backwards" in str(app.query_one("#train-seed-reason").render())


async def test_a_missing_corpus_is_said_once_and_train_says_why(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        toasts = []
        app.notify = lambda message, **kwargs: toasts.append(message)  # type: ignore[method-assign]
        missing = str(tmp_path / "no-such-corpus.txt")
        await type_into(pilot, "#corpus", missing)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.form.corpus_problem is not None, "the corpus to be refused")
        await pilot.pause(1.0)  # past the typing debounce, which used to load (and say) it a second time
        said = [toast for toast in toasts if missing in toast]
        assert len(said) == 1 and "does not exist" in said[0] and "--corpus" not in said[0]
        await pilot.press("ctrl+t")
        assert toasts[-1].startswith("The corpus did not load: Corpus path") and "not loaded yet" not in toasts[-1]
        assert app.session.runs == {}


async def test_stop_saves_a_loadable_checkpoint_and_resume_continues(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_long_run(pilot, app, tiny_corpus, "stop-me")
        await pilot.press("f5", "x")
        await wait_for(pilot, lambda: app.run_status("stop-me") == "stopped", "the run to stop")
        stopped = load_run(tmp_path, "stop-me")
        assert stopped.record.status == "stopped" and stopped.record.step > 0

        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: (
                app.session.get("stop-me").progress * stopped.record.config.train.epochs * stopped.record.steps_per_epoch
                > stopped.record.step
            ),
            "the resumed run to train further",
        )
        await pilot.press("x")
        await wait_for(pilot, lambda: app.run_status("stop-me") == "stopped", "the resumed run to stop")
        assert load_run(tmp_path, "stop-me").record.step > stopped.record.step


async def test_quit_while_training_asks_then_stops_only_its_own_runs(tiny_corpus, tmp_path):
    """A run another process started in the folder (a controller here, as a headless ``sweep`` does) is named in the
    question and trains on after "stop them"; the app's own run stops with a checkpoint."""
    elsewhere = Controller(tmp_path)
    (other,) = elsewhere.start([tiny_config("elsewhere", tiny_corpus, train__epochs=500)], device="cpu")
    app = make_app(tiny_corpus, tmp_path)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await start_long_run(pilot, app, tiny_corpus, "quit-me")
            await wait_for(pilot, lambda: app.session.get(other) and app.run_status(other) == "training", "the other run")
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), "the quit confirmation")
            question = str(app.screen.query_one(Static).render())
            assert question.startswith("1 run training started here.") and "1 run (elsewhere) another process started" in question
            await pilot.press("n")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmQuit), "the confirmation to close")
            assert app.run_status("quit-me") == "training"
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), "the quit confirmation")
            await pilot.press("y")
            await wait_for_exit(app)
        record = load_run(tmp_path, "quit-me").record
        assert record.status == "stopped" and record.step > 0
        assert elsewhere.runs.view(other).status == "training"
    finally:
        elsewhere.stop(other)
        deadline = time.monotonic() + 60
        while elsewhere.runs.view(other).status in ("queued", "training") and time.monotonic() < deadline:
            time.sleep(0.1)


async def test_sigterm_stops_runs_and_exits(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_long_run(pilot, app, tiny_corpus, "term-me")
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            pytest.skip("the app could not install its SIGTERM handler here (not the main thread)")
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for_exit(app)
    assert app.return_code == 128 + signal.SIGTERM  # the launcher exits with it
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
            await settle(pilot)
            assert weight.value == "24", f"attempt {attempt}: {weight.value!r}"
        assert "Ready: 1 run" in str(app.query_one("#form-status").render())


async def test_two_tab_keys_in_one_write_end_on_the_second(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        for first, second, tab in (
            ("f4", "f3", "plots"),
            ("f3", "f4", "generate"),
            ("f4", "f2", "setup"),
            ("f2", "f4", "generate"),
        ):
            burst(app, first, second)
            await settle(pilot)  # a late focus message used to pull the tabs back to the first key's tab
            assert app.tabs.active == tab, (first, second)
            assert app.tabs.get_pane(tab) in app.focused.ancestors_with_self


# -- Plots: log y, a pane that cannot draw, the cursor's readout, smoothing ---------------------


def hand_made_app(tmp_path, tiny_corpus, *runs: str, **overrides) -> ExplorerApp:
    """The app over a checkpoints folder of hand-made finished runs (round-number metrics)."""
    checkpoints = tmp_path / "checkpoints"
    for name in runs:
        write_hand_made_run(checkpoints, name, **overrides)
    return make_app(tiny_corpus, checkpoints)


async def show_runs(pilot, *names: str) -> None:
    """Wait for the saved runs to be listed, show each (space in the runs list) and wait for its history."""
    app = pilot.app
    await wait_for(pilot, lambda: all(app.session.get(name) and name in app.runs_table.rows for name in names), "the runs")
    await pilot.press("f5")
    for name in names:
        app.runs_table.move_cursor(row=app.runs_table.get_row_index(name))
        await pilot.press("space")
        await wait_for(pilot, lambda name=name: bool(app.session.get(name).series), f"{name}'s history")


async def redrawn(pilot) -> None:
    """Wait for the plots' next redraw tick to have drawn what changed, and for the screen to show it."""
    await wait_for(pilot, lambda: not pilot.app.plots.pending, "the plots' redraw")
    await settle(pilot)


async def on_plots(pilot, *names: str) -> None:
    """Show the saved runs ``names``, switch to the Plots tab and wait for its drawing."""
    await show_runs(pilot, *names)
    await pilot.press("f3")
    await redrawn(pilot)


async def test_log_y_survives_tab_switches_resizes_and_new_points(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(100, 30)) as pilot:
        await show_runs(pilot, "a")
        run = app.session.get("a")
        run.series["train_kl"][0] = run.series["train_kl"][0]._replace(value=0.0)  # a zero has no logarithm
        await pilot.press("f3", "l")
        for keys in (("f2",), ("f3",), ("f4", "f3")):
            await pilot.press(*keys)
            await redrawn(pilot)
        for size in ((80, 24), (160, 48), (100, 30)):
            await pilot.resize_terminal(*size)
            await redrawn(pilot)
        run.series["train_loss"].append(Point(26, 3.25, 135.0, 5.4))
        app.plots.mark_changed()
        await redrawn(pilot)
        assert app.return_code is None and app.is_running
        label = app.plots.legend(run)
        assert app.plots.drawn["train-loss"][label][-1] == (3.25, 5.4)
        assert (
            all(y > 0 for _, y in app.plots.drawn["kl"][label])
            and len(app.plots.drawn["kl"][label]) == len(run.series["train_kl"]) - 1
        )
        for pane in PANES:
            rendered = str(app.query_one(f"#plot-{pane.id}").render())
            assert "could not be drawn" not in rendered and "log" in rendered


async def test_a_pane_that_cannot_draw_says_so_and_the_app_goes_on(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(100, 30)) as pilot:
        await show_runs(pilot, "a")
        await pilot.press("f3")
        plot = app.query_one("#plot-kl")

        def broken() -> str:
            raise ValueError("math domain error")

        plot.plt.build = broken
        plot.refresh()
        await settle(pilot)
        await pilot.press("f2", "f3")
        await redrawn(pilot)
        assert app.is_running
        assert "could not be drawn (ValueError: math domain error)" in str(plot.render())
        assert "entropy" in str(app.query_one("#plot-entropy").render())


async def test_cursor_readout_gives_each_shown_runs_values_at_x(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a", "b")
    async with app.run_test(size=(160, 48)) as pilot:
        await show_runs(pilot, "a", "b")
        await pilot.press("f3", "right")
        plots = app.plots
        assert plots.cursor == 0.25
        readout = str(plots.query_one("#plot-readout").render())
        lines = {line["epoch"]: line for line in hand_made_metrics(3) if line["kind"] == "step"}
        assert readout.startswith("epoch 0.25")
        for name in ("a", "b"):
            assert f"{plots.legend(app.session.get(name))}: entropy {lines[0.25]['train_entropy']:.3g}" in readout
        assert f"training loss {lines[0.25]['train_loss']:.3g}" in readout and "validation loss 6.75 (at 1)" in readout
        await pilot.press("end")
        assert plots.cursor == 3.0
        readout = str(plots.query_one("#plot-readout").render())
        assert readout.count("validation loss 5.75 ·") + readout.count("validation loss 5.75") == 2
        await pilot.press("left")
        assert plots.cursor == 2.75
        await pilot.press("escape")
        assert plots.cursor is None and not plots.query_one("#plot-readout").has_class("-shown")


async def test_smoothing_cycles_and_keeps_the_raw_points(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        await pilot.press("f3")
        plots = app.plots
        for expected in (0.6, 0.9, 0.0):
            await pilot.press("e")
            await redrawn(pilot)
            assert plots.smoothing == expected
            title = plots.pane_title(PANES[2], app.session.shown)
            assert (f"EMA {expected:g}" in title) == bool(expected)
        assert plots.drawn["train-loss"][plots.legend(app.session.get("a"))] == app.session.get("a").points("train_loss")


# -- Generate tab: copy, long seeds, the weights' epoch ------------------------------------------


async def pin_seed(pilot, seed: str) -> None:
    app = pilot.app
    await pilot.press("f4")
    app.query_one("#seed-text", Input).value = seed
    await pilot.press("enter")
    panel = app.generation
    await wait_for(
        pilot,
        lambda: all(panel._current(seed, column) is not None for column in panel.columns),
        f"the continuations of {seed[:20]!r}",
    )


async def test_y_in_the_table_copies_it_as_markdown(tiny_corpus, tmp_path, stub_generation):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        await pin_seed(pilot, "the government")
        await pilot.press("down")
        assert app.focused is app.query_one("#continuations")
        await pilot.press("y")
        await pilot.pause()
        panel = app.generation
        assert app.clipboard == panel.markdown()
        continuation = panel.results[("the government", "a")][1]
        assert f"| the government | {continuation.text} (epoch 3) |" in app.clipboard


async def test_typing_a_seed_while_the_table_has_focus_goes_to_the_seed_field(
    tiny_corpus, tmp_path, monkeypatch, stub_generation
):
    monkeypatch.chdir(tmp_path)
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        await pin_seed(pilot, "new york")
        await pilot.press("down")
        table, seed = app.query_one("#continuations"), app.query_one("#seed-text", Input)
        assert app.focused is table
        await pilot.press(*"the government")  # neither t nor h is a key of the table
        assert app.focused is seed and seed.value == "the government"
        assert not app.query_one("#sampling", Switch).value and not list(tmp_path.glob("*.md"))  # no s, no m fired


async def test_a_long_seed_is_cut_in_the_table_and_whole_in_the_step_view(tiny_corpus, tmp_path, stub_generation):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    long_seed = " ".join(["zebra", "the", "quagga"] * 400)[:2000]
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        await pin_seed(pilot, "new york")
        await pin_seed(pilot, long_seed)
        table = app.query_one("#continuations")
        assert table.ordered_columns[0].content_width <= SEED_CELL_WIDTH
        cell = str(table.get_cell(long_seed, "a"))
        assert cell.count("zebra") == 1 and cell.count("quagga") == 1 and "ep 3 · " in cell
        await pilot.press("down")
        table.move_cursor(row=table.get_row_index(long_seed), column=1)
        await pilot.pause()
        steps = app.query_one("#steps", Static).content
        assert long_seed in steps.caption and len(steps.title) < 200 and "(epoch 3)" in steps.title
        assert steps.row_count == app.generation.words
        await pilot.press("d")
        await wait_for(pilot, lambda: long_seed not in app.generation.seeds, "the long seed to be unpinned")
        assert table.ordered_columns[0].content_width == len("new york")
        assert str(table.get_cell("new york", "a")).startswith("ep 3 · ")


# -- Exports: each a file in the current directory, named in a toast ---------------------------


async def test_exports_write_csv_equal_to_metrics_jsonl_figures_and_markdown(tiny_corpus, tmp_path, monkeypatch, stub_generation):
    exports = tmp_path / "exports"
    exports.mkdir()
    monkeypatch.chdir(exports)
    app = hand_made_app(tmp_path, tiny_corpus, "a", "b")
    toasts: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kwargs: toasts.append(message)  # type: ignore[method-assign]
        await show_runs(pilot, "a", "b")
        await pilot.press("f3", "c")
        (csv_path,) = exports.glob("lm-explorer-metrics-*.csv")
        assert toasts[-1] == f"Saved the metrics of 2 run(s) to {csv_path}"
        with csv_path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        for name in ("a", "b"):
            lines = [json.loads(text) for text in (tmp_path / "checkpoints" / name / "metrics.jsonl").read_text().splitlines()]
            mine = [row for row in rows if row["run"] == name]
            assert len(mine) == len(lines)
            for row, line in zip(mine, lines, strict=True):
                assert {key: row[key] for key in line} == {key: str(value) for key, value in line.items()}
                assert all(row[key] == "" for key in row if key not in line and key != "run")

        await pilot.press("p")  # the pane set in view, as a figure in three formats, drawn in a thread
        await wait_for(pilot, lambda: toasts[-1].startswith("Saved 4 panes"), "the figure's toast")
        (png,) = exports.glob("lm-explorer-figure-*.png")
        (svg,) = exports.glob("lm-explorer-figure-*.svg")
        (pdf,) = exports.glob("lm-explorer-figure-*.pdf")
        assert png.read_bytes().startswith(b"\x89PNG") and pdf.read_bytes().startswith(b"%PDF")
        assert toasts[-1] == f"Saved 4 panes of 2 run(s) to {png}, {svg}, {pdf}"
        drawing = svg.read_text()  # text kept as text: legends name the runs, titles the panes, the x label the axis
        legends = [f">{MetricPlots.legend(app.session.get(name))}<" for name in ("a", "b")]
        assert [drawing.count(legend) for legend in legends] == [4, 4]
        assert all(f">{title}" in drawing for title in ("entropy", "KL", "training loss", "validation loss", "epoch<"))
        for path in (png, svg, pdf):
            path.unlink()
        await pilot.press("x", "P")  # the selected pane only, on the step axis
        await wait_for(pilot, lambda: toasts[-1].startswith("Saved the entropy pane"), "the figure's toast")
        (svg,) = exports.glob("lm-explorer-figure-*.svg")
        drawing = svg.read_text()
        assert ">step<" in drawing and "validation loss" not in drawing and drawing.count(legends[0]) == 1
        assert toasts[-1].startswith("Saved the entropy pane of 2 run(s) to ")

        await pin_seed(pilot, "new york")
        await pilot.press("down", "m")
        (md_path,) = exports.glob("lm-explorer-generations-*.md")
        assert md_path.read_text() == app.generation.markdown() + "\n" and "| new york |" in md_path.read_text()
        assert toasts[-1] == f"Saved 1 seed(s) × 2 run(s) to {md_path}"


async def test_the_palette_screenshot_saves_in_the_current_directory(tiny_corpus, tmp_path, monkeypatch):
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/Downloads
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.chdir(here)
    app = make_app(tiny_corpus, tmp_path / "checkpoints")
    async with app.run_test(size=(100, 30)) as pilot:
        (screenshot,) = [command for command in app.get_system_commands(app.screen) if command.title == "Screenshot"]
        screenshot.callback()
        await wait_for(pilot, lambda: any(here.glob("*.svg")), "the screenshot file", timeout=10)
        assert not (home / "Downloads").exists()


# -- Runs list: latest and best values, filter, sort, show only / hide all ------------------------


async def test_runs_list_filters_sorts_and_shows_only_one(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(checkpoints, "ce-plain")
    write_hand_made_run(
        checkpoints, "kl-big", objective__regularizer="kl", objective__weight=100.0, metrics=hand_made_metrics(3, start=9.0)
    )
    write_hand_made_run(
        checkpoints, "kl-small", objective__regularizer="kl", objective__weight=1.0, metrics=hand_made_metrics(3, start=8.0)
    )
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(160, 48)) as pilot:
        names = ("ce-plain", "kl-big", "kl-small")
        await show_runs(pilot, *names)
        table = app.runs_table
        await wait_for(pilot, lambda: str(table.get_cell("kl-big", "best_val_loss")) != "–", "the best values")
        best = str(table.get_cell("kl-big", "best_val_loss"))
        assert best == f"{min(v for _, v in app.session.get('kl-big').points('val_loss')):.4g}" == "7.75"
        assert str(table.get_cell("kl-big", "train_loss")) == "7.5" and str(table.get_cell("kl-big", "kl")) == "0.85"

        await pilot.press("slash", *"kl")
        assert sorted(table.listed) == ["kl-big", "kl-small"]
        await pilot.press("space", "b", "i", "g")
        assert table.listed == ["kl-big"]
        await pilot.press("escape")
        assert sorted(table.listed) == sorted(names) and app.focused is table

        await pilot.press("o")  # by name
        assert table.listed == sorted(names)
        for _ in range(2):  # name → objective → weight
            await pilot.press("o")
        assert table.sort_column == "weight" and table.listed == ["ce-plain", "kl-small", "kl-big"]
        await pilot.press("O")
        assert table.listed == ["kl-big", "kl-small", "ce-plain"]

        table.move_cursor(row=table.get_row_index("kl-small"))
        await pilot.press("s")
        assert [run.name for run in app.session.shown] == ["kl-small"]
        assert str(table.get_cell("kl-small", "mark")).startswith("●") and str(table.get_cell("kl-big", "mark")).startswith("○")
        await pilot.press("h")
        assert app.session.shown == []


# -- Run details: the whole config, a diff of two runs, clone into the form, a run name --------


async def test_details_diff_two_runs_and_clone_one_into_the_form_under_a_new_name(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(
        checkpoints, "a", corpus__paths=[str(tiny_corpus)], objective__regularizer="kl", objective__weight=10.0, epochs=1
    )
    write_hand_made_run(
        checkpoints,
        "b",
        corpus__paths=[str(tiny_corpus)],
        objective__regularizer="kl",
        objective__weight=100.0,
        model__hidden_size=32,
        epochs=1,
    )
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        await show_runs(pilot, "a", "b")
        app.runs_table.move_cursor(row=app.runs_table.get_row_index("a"))
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetail) and app.screen.records, "the run details")
        detail = app.screen
        rows = detail.rows()
        assert rows["objective.weight"] == ["10", "100"] and rows["model.hidden_size"] == ["16", "32"]
        assert rows["corpus fingerprint"] == ["0" * 16] * 2 and rows["version torch"] == ["test", "test"]
        assert {"objective.weight", "model.hidden_size"} <= set(detail.differences())
        assert "train.lr" not in detail.differences() and rows["train.lr"] == ["0.001", "0.001"]
        await pilot.press("d")
        listed = [str(row.key.value) for row in detail.query_one(DataTable).ordered_rows]
        assert set(listed) == set(detail.differences())

        await pilot.press("c")
        await wait_for(pilot, lambda: app.tabs.active == "setup", "the Setup tab")
        assert app.query_one("#weight", Input).value == "10" and app.query_one("#regularizer", Select).value == "kl"
        assert app.query_one("#epochs", Input).value == "1"
        assert app.form.extra == {"model.embedding_dim": 8, "model.hidden_size": 16, "train.log_every": 2}
        await type_into(pilot, "#run-name", "a-again")
        await wait_for(pilot, lambda: app.form.ready, "the form to be ready")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: app.session.get("a-again") is not None, "the cloned run")
        clone, original = app.session.get("a-again").config, app.session.get("a").config
        assert clone.model_dump(exclude={"name"}) == original.model_dump(exclude={"name"})


async def test_a_run_name_is_checked_and_a_sweep_adds_the_weight(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        await type_into(pilot, "#run-name", "../escape")
        await pilot.pause()
        assert "is not a plain name" in str(app.query_one("#run-name-reason").render()) and not app.form.ready
        app.query_one("#regularizer", Select).value = "kl"
        await type_into(pilot, "#weight", "1, 10")
        await type_into(pilot, "#epochs", "1")
        await type_into(pilot, "#run-name", "mine")
        await wait_for(pilot, lambda: app.form.ready, "the form to be ready")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: len(app.session.runs) == 2, "the sweep")
        assert sorted(app.session.runs) == ["mine-w1", "mine-w10"]


# -- Help and palette --------------------------------------------------------------------------


async def test_help_scrolls_with_keys_and_lists_the_new_ones(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        scroll = app.screen.query_one("#help-scroll")
        assert app.focused is scroll and scroll.max_scroll_y > 0
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: scroll.scroll_y > 0, "the help to scroll")
        described = {description for _, rows in app.help_sections() for _, description in rows}
        assert {
            "Smooth",
            "Save CSV",
            "Save figure",
            "Save Markdown",
            "Details",
            "Filter",
            "Sort",
            "Clone into the form",
        } <= described


async def test_the_palette_runs_a_command_by_name(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        await pilot.press("ctrl+p", *"save metrics")
        await wait_for(
            pilot,
            lambda: bool(app.screen.query(CommandList)) and app.screen.query_one(CommandList).option_count > 0,
            "the palette's matches",
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(tmp_path.glob("lm-explorer-metrics-*.csv")), "the CSV file", timeout=10)


async def test_the_footer_fits_80_columns_wherever_the_focus_is(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(80, 24)) as pilot:
        await show_runs(pilot, "a")
        for keys in (("f2",), ("f3",), ("f4",), ("f4", "down"), ("f5",)):
            await pilot.press(*keys)
            await settle(pilot)
            footer = app.query_one(Footer)
            keys_shown = [child for child in footer.children if child.region.width]
            assert keys_shown and sum(child.outer_size.width for child in keys_shown) <= 80, keys
            assert "f1 Help" in " ".join(str(child.render()) for child in keys_shown), keys


# -- Session memory: the next launch on the same checkpoints folder comes back as it was left ----


async def test_form_seeds_shown_runs_and_toggles_come_back_on_the_next_launch(tiny_corpus, tmp_path, stub_generation):
    app = hand_made_app(tmp_path, tiny_corpus, "a", "b")
    checkpoints = tmp_path / "checkpoints"
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        app.query_one("#regularizer", Select).value = "entropy"
        await type_into(pilot, "#weight", "0.5, 2")
        await type_into(pilot, "#train-seed", "7")
        await show_runs(pilot, "b")
        await pin_seed(pilot, "new york")
        app.query_one("#corpus", Input).value = "/elsewhere/corpus.txt"
        await pilot.press("f3", "l", "e", "ctrl+q")
        await wait_for_exit(app)
    assert json.loads((checkpoints / ".lm-explorer-app.json").read_text())["form"]["corpus"] == "/elsewhere/corpus.txt"

    again = make_app(tiny_corpus, checkpoints)
    async with again.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: again.session.get("a") is not None and again.session.get("b") is not None, "the saved runs")
        assert again.query_one("#regularizer", Select).value == "entropy"
        assert again.query_one("#weight", Input).value == "0.5, 2" and again.query_one("#train-seed", Input).value == "7"
        assert [run.name for run in again.session.shown] == ["b"]
        assert again.generation.seeds == ["new york"]
        assert again.query_one("#corpus", Input).value == str(tiny_corpus)  # given on the command line: it wins
        assert again.plots.log_scale and again.plots.smoothing == 0.6
        await wait_for(pilot, lambda: bool(again.session.get("b").series), "b's history")


async def test_the_memory_is_written_off_the_ui_thread_and_a_slow_disk_does_not_hold_the_app(tiny_corpus, tmp_path, monkeypatch):
    """A write that waits for the disk (here: until released) keeps neither keys nor the next change waiting."""
    import threading

    import tui.memory

    release, writers = threading.Event(), []
    real = tui.memory.save_memory

    def slow(checkpoints, memory) -> None:
        writers.append(threading.current_thread())
        release.wait(10)
        real(checkpoints, memory)

    monkeypatch.setattr(tui.memory, "save_memory", slow)
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    saved = tmp_path / "checkpoints" / ".lm-explorer-app.json"
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        await type_into(pilot, "#train-seed", "7")
        await wait_for(pilot, lambda: bool(writers), "a write to begin")
        await pilot.press("f3", "l")  # while that write waits for the disk
        await wait_for(pilot, lambda: app.plots.log_scale, "the log y axis")
        assert not saved.exists() and threading.main_thread() not in writers
        release.set()
        await wait_for(pilot, lambda: saved.exists() and json.loads(saved.read_text())["log_scale"], "the latest change saved")
        assert json.loads(saved.read_text())["form"]["train-seed"] == "7" and len(writers) <= 3


async def test_a_damaged_memory_file_is_ignored(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / ".lm-explorer-app.json").write_text('{"seeds": "not a list", "smoothing": 5}')
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.form.corpus is not None, "the corpus to load")
        assert app.generation.seeds == [] and app.plots.smoothing == 0.0 and app.is_running


async def test_the_focused_form_field_is_marked(tiny_corpus, tmp_path):
    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        epochs_label = app.query_one("#epochs-field Label")
        before = epochs_label.styles.color
        app.screen.set_focus(app.query_one("#epochs"))
        await pilot.pause()
        assert epochs_label.styles.color != before and epochs_label.styles.text_style.bold
        assert not app.query_one("#lr-field Label").styles.text_style.bold


async def test_the_mouse_toggles_a_run_and_sorts_by_a_header(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(checkpoints, "a", metrics=hand_made_metrics(3, start=9.0))
    write_hand_made_run(checkpoints, "b", metrics=hand_made_metrics(3, start=8.0))
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.runs_table
        await wait_for(pilot, lambda: "a" in table.rows and "b" in table.rows, "the runs")
        row = table.get_row_index("b")
        await wait_for(pilot, lambda: table.region.height > row + 1, "the runs list's layout")
        await pilot.click(RunsTable, offset=(2, row + 1))  # the header is line 0
        await wait_for(pilot, lambda: app.session.get("b").shown, "b to be shown")
        assert not app.session.get("a").shown
        before = [key for key, _ in COLUMNS].index("train_loss")
        header_x = sum(column.get_render_width(table) for column in table.ordered_columns[:before]) + 2  # the train loss column
        await pilot.click(RunsTable, offset=(header_x, 0))
        await wait_for(pilot, lambda: table.sort_column == "train_loss", "the sort")
        assert table.listed == ["b", "a"]
        await pilot.click(RunsTable, offset=(header_x, 0))
        await wait_for(pilot, lambda: table.listed == ["a", "b"], "the reversed sort")


async def test_x_zoom_narrows_the_range_and_fits_y_to_it(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        await pilot.press("f3", "end", "left", "left", "left", "left")  # the cursor at epoch 2
        plots = app.plots
        assert plots.cursor == 2.0
        await pilot.press("plus")
        await redrawn(pilot)
        assert plots.x_range == (2.0 - 2.75 / 4, 2.0 + 2.75 / 4)  # half of 0.25 … 3, around the cursor
        label = plots.legend(app.session.get("a"))
        drawn = plots.drawn["train-loss"][label]
        assert drawn and all(1.3125 <= x <= 2.6875 for x, _ in drawn)
        assert [x for x, _ in drawn] == [x for x, _ in app.session.get("a").points("train_loss") if 1.3125 <= x <= 2.6875]
        assert "x 1.31–2.69" in plots.pane_title(PANES[2], app.session.shown)
        await pilot.press("minus")
        await redrawn(pilot)
        assert plots.x_range == (2.0 - 2.75 / 2, 3.0)  # twice as wide around the cursor, cut at the last x
        await pilot.press("minus")
        await redrawn(pilot)
        assert plots.x_range is None  # back to everything: 0.25 … 3
        await pilot.press("plus", "0")
        await redrawn(pilot)
        assert plots.x_range is None and len(plots.drawn["train-loss"][label]) == len(app.session.get("a").series["train_loss"])


async def test_m_shows_accuracy_perplexity_and_distinct_predictions_panes(tiny_corpus, tmp_path):
    from tui.widgets.plots import QUALITY_PANES

    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(80, 24)) as pilot:
        await on_plots(pilot, "a")
        assert app.query_one("#plot-entropy").display and not app.query_one("#plot-accuracy").display
        app.plots.focus()
        await pilot.press("m", "v")  # the quality panes, from validation at epoch ends
        await redrawn(pilot)
        assert not app.query_one("#plot-entropy").display
        assert all(app.query_one(f"#plot-{pane.id}").display for pane in QUALITY_PANES)
        label = app.plots.legend(app.session.get("a"))
        epochs = [line for line in RunDirectory(tmp_path / "checkpoints", "a").read_metrics() if line["kind"] == "epoch"]
        assert app.plots.drawn["accuracy"][label] == [(line["epoch"], line["accuracy"]) for line in epochs]
        assert app.plots.drawn["distinct"][label] == [(line["epoch"], line["distinct_predictions"]) for line in epochs]
        assert "perplexity" in str(app.query_one("#plot-perplexity").render())
        await pilot.press("m")
        await redrawn(pilot)
        assert app.query_one("#plot-entropy").display and not app.query_one("#plot-accuracy").display


async def test_the_runs_list_says_it_is_reading_the_folder_until_the_runs_are_listed(tiny_corpus, tmp_path):
    from tui.app import READING_RUNS

    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        box = app.query_one("#runs-box")
        assert box.border_subtitle == READING_RUNS and not app.runs_table.rows  # torch and the folder take seconds
        await wait_for(pilot, lambda: "a" in app.runs_table.rows, "the saved run")
        assert box.border_subtitle == ""


async def test_toasts_stay_clear_of_the_runs_list_and_the_readout(tiny_corpus, tmp_path):
    """Notifications stack at the top right, under the tab bar: three long ones leave the runs list and readout free."""
    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(checkpoints, "a")
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await show_runs(pilot, "a")
        await pilot.press("f3", "end")
        for number in range(3):
            app.notify(f"Notification {number}: a sentence long enough to wrap onto a second line of its toast.")
        await wait_for(pilot, lambda: len(app.screen.query("Toast")) == 3, "the toasts", timeout=10)
        await settle(pilot)
        readout, runs = app.plots.query_one("#plot-readout").region, app.query_one("#runs-box").region
        assert readout.height and runs.height
        for toast in app.screen.query("Toast"):
            assert toast.region.y >= 3 and not (toast.region.overlaps(readout) or toast.region.overlaps(runs)), toast.region
