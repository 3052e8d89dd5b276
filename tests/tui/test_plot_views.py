"""The plots' views over hand-made runs: x axis by step, epoch or wall time, per-pane y zoom, click to cursor,
and the runs list's throughput. Every number comes from :func:`tests.conftest.hand_made_metrics` (round numbers)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from tests.conftest import hand_made_metrics, wait_for, write_hand_made_run
from tests.tui.test_app import hand_made_app, make_app, on_plots, redrawn, show_runs, wait_for_exit
from tui.plotting import MIN_Y_ZOOM, compact
from tui.widgets.runs_table import rate_label

pytestmark = pytest.mark.asyncio

STEP_LINES = [line for line in hand_made_metrics(3) if line["kind"] == "step"]


def readout(app) -> str:
    return str(app.plots.query_one("#plot-readout").render())


async def test_x_axis_cycles_epoch_step_wall_time_and_the_cursor_readout_and_zoom_follow(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = hand_made_app(tmp_path, tiny_corpus, "a", "b")
    async with app.run_test(size=(160, 48)) as pilot:
        await show_runs(pilot, "a", "b")
        await pilot.press("f3", "right")
        plots, run = app.plots, app.session.get("a")
        label = plots.legend(run)
        assert plots.cursor == 0.25 and readout(app).startswith("epoch 0.25 │")

        await pilot.press("x")  # step: the cursor stays on the same line (step 2)
        await redrawn(pilot)
        assert plots.x_axis == "step" and plots.cursor == 2.0
        text = readout(app)
        assert text.startswith("step 2 │") and "training loss 6.88 ·" in text and "validation loss 6.75 (at 8)" in text
        assert plots.drawn["train-loss"][label] == [(line["step"], line["train_loss"]) for line in STEP_LINES]
        assert "step" in str(app.query_one("#plot-train-loss").render()).splitlines()[-1]  # the x label

        await pilot.press("x")  # wall time
        await redrawn(pilot)
        assert plots.x_axis == "wall" and plots.cursor == 10.0
        text = readout(app)
        assert text.startswith("wall time 10 s │") and "validation loss 6.75 (at 42.5 s)" in text
        assert plots.drawn["train-loss"][label] == [(line["wall_s"], line["train_loss"]) for line in STEP_LINES]
        assert "training wall time (s)" in str(app.query_one("#plot-train-loss").render())
        assert "by wall time" in plots.pane_title(plots.panes[2], app.session.shown)

        await pilot.press("end", "plus")  # the last x is the last epoch line's wall time, 127.5 s
        await redrawn(pilot)
        assert plots.cursor == 127.5 and readout(app).startswith("wall time 127.5 s │")
        assert plots.x_range == (127.5 - (127.5 - 10.0) / 4, 127.5)
        assert [x for x, _ in plots.drawn["train-loss"][label]] == [105.0, 115.0, 125.0]

        await pilot.press("e")  # smoothing draws over the same raw points
        await redrawn(pilot)
        assert [x for x, _ in plots.drawn["train-loss"][label]] == [105.0, 115.0, 125.0]

        await pilot.press("c")  # the CSV holds every x axis, whichever is drawn
        (path,) = tmp_path.glob("lm-explorer-metrics-*.csv")
        with path.open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if row["run"] == "a"]
        assert list(rows[0])[:5] == ["run", "kind", "step", "epoch", "wall_s"]
        assert [float(row["wall_s"]) for row in rows] == [line["wall_s"] for line in hand_made_metrics(3)]

        await pilot.press("x")  # back to epochs: the cursor and the x range move with it
        await redrawn(pilot)
        assert (
            plots.x_axis == "epoch" and plots.cursor == 3.0 and plots.x_range == (2.25, 3.0)
        )  # 98.1 s is nearest 95 s, epoch 2.25
        assert readout(app).startswith("epoch 3 │")


async def test_a_resumed_run_keeps_wall_time_monotone(tiny_corpus, tmp_path):
    """A trainer killed after writing lines past its last checkpoint (epoch 1, step 8): the resumed run's lines replace them."""
    lines = hand_made_metrics(2)
    killed = [line for line in lines if line["step"] <= 8] + [{**line, "wall_s": line["wall_s"] + 1000.0} for line in lines[5:7]]
    resumed = [{**line, "wall_s": line["wall_s"] + 0.5} for line in lines[5:]]  # the clock goes on from 42.5 s, a little slower
    write_hand_made_run(tmp_path / "checkpoints", "a", epochs=2, metrics=killed + resumed)
    app = make_app(tiny_corpus, tmp_path / "checkpoints")
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        run = app.session.get("a")
        walls = [x for x, _ in run.points("train_loss", "wall")]
        assert walls == [10.0, 20.0, 30.0, 40.0, 53.0, 63.0, 73.0, 83.0] and walls == sorted(walls)
        assert [x for x, _ in run.points("train_loss", "step")] == [2, 4, 6, 8, 10, 12, 14, 16]
        assert [x for x, _ in run.points("val_loss", "wall")] == [42.5, 85.5]


async def test_the_runs_list_shows_and_sorts_by_the_latest_throughput(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(checkpoints, "fast")
    write_hand_made_run(
        checkpoints, "slow", metrics=[{**line, "pairs_per_s": line["pairs_per_s"] / 16} for line in hand_made_metrics(3)]
    )
    write_hand_made_run(
        checkpoints, "hidden", metrics=[{**line, "pairs_per_s": line["pairs_per_s"] * 2} for line in hand_made_metrics(3)]
    )
    write_hand_made_run(
        checkpoints,
        "old",
        metrics=[
            {key: value for key, value in line.items() if key not in ("wall_s", "pairs_per_s")} for line in hand_made_metrics(3)
        ],
    )  # from before the engine recorded them
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(160, 48)) as pilot:
        await show_runs(pilot, "fast", "slow")
        table = app.runs_table
        for name in ("fast", "slow"):
            last = json.loads((checkpoints / name / "metrics.jsonl").read_text().splitlines()[-1])
            await wait_for(
                pilot,
                lambda name=name, last=last: str(table.get_cell(name, "pairs_per_s")) == rate_label(last["pairs_per_s"]),
                f"{name}'s throughput",
            )
        assert (str(table.get_cell("fast", "pairs_per_s")), str(table.get_cell("slow", "pairs_per_s"))) == ("10.2k/s", "640/s")
        assert (
            str(table.get_cell("hidden", "pairs_per_s")) == "20.5k/s" and not app.session.get("hidden").series
        )  # its last line alone
        assert str(table.get_cell("old", "pairs_per_s")) == "–"
        column = [column.key.value for column in table.ordered_columns].index("pairs_per_s")
        header_x = sum(c.get_render_width(table) for c in table.ordered_columns[:column]) + 2
        await pilot.click(type(table), offset=(header_x, 0))
        await wait_for(pilot, lambda: table.sort_column == "pairs_per_s", "the sort")
        assert table.listed == ["slow", "fast", "hidden", "old"]  # a missing value sorts last
        await pilot.click(type(table), offset=(header_x, 0))
        await wait_for(pilot, lambda: table.listed[0] == "old", "the reversed sort")
        assert table.listed == ["old", "hidden", "fast", "slow"]


async def test_y_zoom_acts_on_the_selected_pane_alone_and_survives_log_y(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        await on_plots(pilot, "a")
        plots = app.plots
        fitted = dict(plots.y_limits)
        assert fitted["train-loss"] == (5.5, 6.875) and fitted["entropy"] == (5.0, 6.375)
        await pilot.press("right_square_bracket", "right_square_bracket", "up")  # the training loss pane, zoomed in
        await redrawn(pilot)
        assert plots.selected == 2 and plots.y_zoom == {"train-loss": 0.5}
        assert plots.y_limits["train-loss"] == (5.5, 6.1875)  # half as tall, around the latest value (5.5), kept inside
        assert {pane: limits for pane, limits in plots.y_limits.items() if pane != "train-loss"} == {
            pane: limits for pane, limits in fitted.items() if pane != "train-loss"
        }
        assert "y ×2" in plots.pane_title(plots.panes[2], app.session.shown)
        assert "▸ training loss" in str(app.query_one("#plot-train-loss").render())
        await pilot.press("up")
        await redrawn(pilot)
        assert plots.y_limits["train-loss"] == (5.5, 5.84375)
        await pilot.press("down", "home", "right", "right", "right", "right", "right")  # the cursor at epoch 1.5
        await redrawn(pilot)
        assert plots.cursor == 1.5 and plots.y_limits["train-loss"] == (6.25 - 0.34375, 6.25 + 0.34375)  # around the value there
        await pilot.press("l")
        await redrawn(pilot)
        low, high = math.log10(5.5), math.log10(6.875)
        center, half = math.log10(6.25), (high - low) / 4
        assert plots.y_limits["train-loss"] == pytest.approx((center - half, center + half))
        assert all("could not be drawn" not in str(app.query_one(f"#plot-{pane.id}").render()) for pane in plots.panes)
        await pilot.press("l", "y")
        await redrawn(pilot)
        assert plots.y_zoom == {} and plots.y_limits["train-loss"] == (5.5, 6.875)
        await pilot.press("down")  # no zooming out past the fitted range
        assert plots.y_zoom == {}
        await pilot.press(*["up"] * 60)  # nor in past the narrowest window the ticks can still tell apart
        await redrawn(pilot)
        assert plots.y_zoom == {"train-loss": MIN_Y_ZOOM}
        low, high = plots.y_limits["train-loss"]
        assert high - low == pytest.approx((6.875 - 5.5) * MIN_Y_ZOOM)


async def test_x_axis_and_y_zoom_come_back_on_the_next_launch(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        await pilot.press("f3", "x", "x", "left_square_bracket", "up", "ctrl+q")
        await wait_for_exit(app)
    again = make_app(tiny_corpus, tmp_path / "checkpoints")
    async with again.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: again.session.get("a") is not None and bool(again.session.get("a").series), "a's history")
        assert again.plots.x_axis == "wall" and again.plots.y_zoom == {"val-loss": 0.5}
        await pilot.press("f3")
        await redrawn(pilot)
        assert again.plots.y_limits["val-loss"] == (5.75, 6.25)  # the fit 5.75 … 6.75, half of it from the latest value up
        assert [x for x, _ in again.plots.drawn["val-loss"][again.plots.legend(again.session.get("a"))]] == [42.5, 85.0, 127.5]


def canvas_columns(plot) -> tuple[int, int]:
    """The first column of a pane's plot area and its width, read off the frame drawn on the screen (┌ … ┐)."""
    top = next(line for line in plot.render().plain.splitlines() if "┌" in line)
    return top.index("┌") + 1, top.index("┐") - top.index("┌") - 1


async def test_a_click_in_a_pane_puts_the_cursor_at_its_x_and_selects_the_pane(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, "a")
    async with app.run_test(size=(120, 36)) as pilot:
        await on_plots(pilot, "a")
        plots, plot = app.plots, app.query_one("#plot-train-loss")
        start, width = canvas_columns(plot)
        row = plot.size.height // 2
        column = start + round((2.0 - 0.25) / (3.0 - 0.25) * (width - 1))  # the cell plotext draws x = 2 in
        await pilot.click("#plot-train-loss", offset=(column, row))
        await wait_for(pilot, lambda: plots.cursor == 2.0, "the cursor at epoch 2")
        assert plots.selected == 2 and app.focused is plots and readout(app).startswith("epoch 2 │")
        await pilot.click("#plot-train-loss", offset=(column + 1, row))  # a cell further: the nearest x with points is still 2
        await pilot.pause()
        assert plots.cursor == 2.0

        await pilot.click("#plot-val-loss", offset=(0, row))  # left of its plot area: its first x, epoch 1 (validation only)
        await wait_for(pilot, lambda: plots.cursor == 1.0, "the cursor at epoch 1")
        assert plots.selected == 3

        await pilot.press("x", "x")  # wall time: the click maps the same cell through the new x limits
        await redrawn(pilot)
        start, width = canvas_columns(plot)
        await pilot.click("#plot-train-loss", offset=(start + width - 1, row))
        await wait_for(pilot, lambda: plots.cursor == 125.0, "the cursor at the pane's last wall time")
        await pilot.click("#plot-train-loss", offset=(start, row))
        await wait_for(pilot, lambda: plots.cursor == 10.0, "the cursor at the first wall time")


def tick_labels(plot) -> list[float]:
    """The y tick labels the pane shows now, top to bottom, read off its rendered frame."""
    rows = str(plot.render()).splitlines()
    return [float(row.split("┤")[0]) for row in rows if "┤" in row and row.split("┤")[0].strip()]


async def test_at_80x24_each_pane_gets_eight_rows_and_m_pages_through_them(tiny_corpus, tmp_path):
    app = hand_made_app(tmp_path, tiny_corpus, *(f"run-{i}" for i in range(6)))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_plots(pilot, "run-0")
        plots = app.plots
        seen = []
        for _ in range(4):
            await redrawn(pilot)
            assert len(plots.panes) == 2 and plots.grid_shape == (2, 1)
            assert all(app.query_one(f"#plot-{pane.id}").size.height >= 8 for pane in plots.panes)
            assert all(len(tick_labels(app.query_one(f"#plot-{pane.id}"))) >= 2 for pane in plots.panes)
            seen.append([pane.id for pane in plots.panes])
            await pilot.press("m")
        assert seen == [["entropy", "kl"], ["train-loss", "val-loss"], ["accuracy", "perplexity"], ["distinct", "val-loss-2"]]
        await redrawn(pilot)
        assert [pane.id for pane in plots.panes] == ["entropy", "kl"]  # round again
        await pilot.resize_terminal(120, 48)
        await redrawn(pilot)
        await redrawn(pilot)
        assert plots.grid_shape == (2, 2) and len(plots.panes) == 4


async def test_no_frame_after_toggling_log_y_mixes_ticks_of_two_scales(tiny_corpus, tmp_path):
    """Lines arrive between toggles, as while runs train; every frame's ticks must fall top to bottom and be the
    ticks of the scale its points are drawn on."""
    app = hand_made_app(tmp_path, tiny_corpus, "a", metrics=hand_made_metrics(2, start=1200.0, drop=400.0))
    async with app.run_test(size=(100, 30)) as pilot:
        await on_plots(pilot, "a")
        run, plots = app.session.get("a"), app.plots
        step = max(point.step for point in run.series["train_loss"])
        for toggle in range(6):
            step += 2
            run.add_lines([{"kind": "step", "step": step, "epoch": 2 + toggle / 10, "train_loss": 9.0 + toggle}])
            plots.mark_changed()
            await pilot.press("l")
            for _ in range(3):  # the frame right after the key, and the ones after the redraw tick
                await pilot.pause()
                for pane in plots.panes:
                    plot = app.query_one(f"#plot-{pane.id}")
                    labels = tick_labels(plot)
                    assert labels == sorted(labels, reverse=True) and len(set(labels)) == len(labels), (pane.id, labels)
                    if plot.figure is not None and plot.figure.y_limits is not None:
                        assert [compact(value) for value in labels] == [
                            label for label in reversed(plot.figure.ticks[1]) if float(label) in labels
                        ]
            await redrawn(pilot)
            assert plots.log_scale == (toggle % 2 == 0)


async def test_runs_are_lines_with_their_marker_at_the_readout(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(checkpoints, "a")
    write_hand_made_run(checkpoints, "b", metrics=hand_made_metrics(3, start=9.0))
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        await on_plots(pilot, "a", "b")
        plots = app.plots
        figure = app.query_one("#plot-train-loss").figure
        assert {line.marker for line in figure.lines} == {"braille"}  # drawn as lines
        assert [(mark.marker, mark.xs) for mark in figure.marks] == [("•", [3.0]), ("x", [3.0])]  # at each run's last point
        await pilot.press("home", "right")
        await redrawn(pilot)
        figure = app.query_one("#plot-train-loss").figure
        assert plots.cursor == 0.5 and [mark.xs for mark in figure.marks] == [[0.5], [0.5]]
        frame = str(app.query_one("#plot-train-loss").render())
        assert frame.count("•") == 1 and frame.count("x") == 1  # one marker per run; the rest are braille dots


def cells(app, text, width: int) -> list[list[tuple[str, object]]]:
    """Each row of a pane's drawing as (character, style) per cell, however the segments are cut."""
    lines = app.console.render_lines(text, app.console.options.update_width(width), pad=False)
    return [[(character, segment.style) for segment in line for character in segment.text] for line in lines]


async def test_a_cursor_move_lays_the_cursor_over_the_kept_drawing_exactly_as_plotext_draws_it(tiny_corpus, tmp_path):
    """At every x, in each mode (by step with smoothing and log y, an x zoom with the cursor led out of it, a y zoom), a seed
    group's band among the lines: each pane equals plotext's whole drawing cell by cell, and a move keeps the drawing
    of the lines unless its limits move: a y zoom's window follows the cursor, the x range stretches to a cursor
    outside the pane's points. Points that arrive are drawn by a redraw tick, not by a cursor move, and right after a move one
    tick later."""
    checkpoints = tmp_path / "checkpoints"
    for seed in (1, 2):
        write_hand_made_run(checkpoints, f"g-s{seed}", 1, metrics=hand_made_metrics(1, start=7 + seed / 5), train__seed=seed)
    write_hand_made_run(checkpoints, "b", 1, metrics=hand_made_metrics(1, start=9.0), objective__regularizer="kl")
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(app.runs_table.groups) == 1, "the group's row")
        await pilot.press("f5")
        app.runs_table.move_cursor(row=app.runs_table.get_row_index(next(iter(app.runs_table.groups))))
        await pilot.press("space")
        await on_plots(pilot, "b")
        await wait_for(pilot, lambda: all(app.session.get(name).series for name in ("g-s1", "g-s2")), "the members' histories")
        await redrawn(pilot)
        plots = app.plots
        panes = [app.query_one(f"#plot-{pane.id}") for pane in plots.panes]
        assert any(line.marker == "·" for line in panes[0].figure.lines)  # the group's band
        layered = 0
        for keys in ((), ("e", "l", "x"), ("end", "plus", "home"), ("0", "up")):
            await pilot.press(*keys, "home")
            await redrawn(pilot)
            for _ in range(len(plots.cursor_positions())):
                drawings, before = [plot.drawing for plot in panes], plots.cursor
                await pilot.press("right")  # the move hands each pane its figure at once; render() draws it here
                for plot, drawing in zip(panes, drawings, strict=True):
                    shown = plot.render()
                    assert cells(app, shown, plot.size.width) == cells(app, plot.whole(), plot.size.width), (keys, plot.id)
                    xs = [x for line in plot.figure.lines for x in line.xs]
                    if (
                        not plots.y_zoom
                        and not plots.x_range
                        and min(xs) <= min(before, plots.cursor) <= max(before, plots.cursor) <= max(xs)
                    ):
                        assert plot.drawing is drawing, (keys, plot.id, plots.cursor)
                        layered += 1
        assert layered > 20

        await pilot.press("l", "0", "y", "end")  # a point comes as from a training run: a move keeps the lines as drawn
        await redrawn(pilot)
        run, train_loss = app.session.get("b"), app.query_one("#plot-train-loss")
        await wait_for(pilot, lambda: not plots._tick_skipped, "a tick that let no points wait")  # none waiting now
        run.add_lines([{"kind": "step", "step": 10, "epoch": 1.25, "wall_s": 50.0, "train_loss": 7.5}])
        plots.mark_changed()
        plots.action_move_cursor(-1)  # at once, before a redraw tick can run: step 6, by step since x above
        assert train_loss.figure.cursor == 6 and readout(app).startswith("step 6 │") and plots.pending
        assert plots.drawn["train-loss"][plots.legend(run)][-1] == (8.0, 8.5)  # the lines as drawn: no step 10 yet
        plots.redraw_tick()  # right after a move the tick lets the keys go first, once
        assert plots.pending and plots.drawn["train-loss"][plots.legend(run)][-1] == (8.0, 8.5)
        plots.redraw_tick()
        assert not plots.pending and plots.drawn["train-loss"][plots.legend(run)][-1] == (10.0, 7.5)


@pytest.mark.parametrize("key", ["right_square_bracket", "up"])
async def test_a_cursor_move_right_after_a_pane_change_moves_the_cursor_in_every_pane(tiny_corpus, tmp_path, key):
    """Selecting a pane or zooming one y range changes that pane's drawing; a cursor move before the next redraw tick
    draws every pane's cursor at the new x, not only the changed pane's."""
    app = hand_made_app(tmp_path, tiny_corpus, "a", "b")
    async with app.run_test(size=(160, 48)) as pilot:
        await show_runs(pilot, "a", "b")
        await pilot.press("f3", "right")
        await redrawn(pilot)
        plots = app.plots
        panes = [app.query_one(f"#plot-{pane.id}") for pane in plots.panes]
        await pilot.press(key, "right")
        await pilot.pause()
        assert plots.cursor is not None and [pane.figure.cursor for pane in panes] == [plots.cursor] * len(panes)
