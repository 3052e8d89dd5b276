"""Seed groups in the app: one mean line with a band per group, its readout, the toggles (Pilot, hand-made runs)."""

from __future__ import annotations

import json
import re
import sys

import pytest
from textual.widgets import Static

from engine.study.figures import MATPLOTLIB_INSTALL
from tests.conftest import hand_made_metrics, wait_for, write_hand_made_run
from tests.tui.test_app import make_app, redrawn, show_runs
from tui.screens.sweep import SweepScreen
from tui.widgets.plots import PANES
from tui.widgets.runs_table import COLUMNS

pytestmark = pytest.mark.asyncio

SEEDS = (0, 1, 2)
KL10 = [f"g-w10-s{seed}" for seed in SEEDS]
KL1 = [f"g-w1-s{seed}" for seed in SEEDS]


@pytest.fixture
def grouped_app(tmp_path, tiny_corpus):
    """Two 3-seed groups (kl 10 and kl 1) whose validation loss moves by 0.1 per seed, and one lone control run."""
    checkpoints = tmp_path / "checkpoints"
    for seed in SEEDS:
        for names, weight, start in ((KL10, 10.0, 7.0), (KL1, 1.0, 6.0)):
            write_hand_made_run(
                checkpoints,
                names[seed],
                metrics=hand_made_metrics(3, start=start + 0.1 * seed),
                objective__regularizer="kl",
                objective__weight=weight,
                train__seed=seed,
            )
    write_hand_made_run(checkpoints, "control")
    return make_app(tiny_corpus, checkpoints)


def group_row(table, label: str) -> str:
    """The key of the group row labelled ``label``."""
    (key,) = [key for key, group in table.groups.items() if group.label == label]
    return key


def row_cells(table, key: str) -> dict[str, str]:
    """The row ``key``'s cells as text, by column."""
    return dict(zip((column for column, _ in COLUMNS), (str(cell) for cell in table.get_row(key)), strict=True))


async def show_groups(pilot) -> None:
    """Show both groups (space on their rows) and the lone run, and wait for every history."""
    app = pilot.app
    await wait_for(pilot, lambda: len(app.runs_table.groups) == 2, "the group rows")
    await pilot.press("f5")
    for label in ("g-w10", "g-w1"):
        app.runs_table.move_cursor(row=app.runs_table.get_row_index(group_row(app.runs_table, label)))
        await pilot.press("space")
    await show_runs(pilot, "control")
    await wait_for(pilot, lambda: all(app.session.get(name).series for name in KL10 + KL1), "the members' histories")


async def test_a_seed_group_is_one_mean_line_with_a_band_and_a_readout(grouped_app):
    async with grouped_app.run_test(size=(160, 48)) as pilot:
        await show_groups(pilot)
        await pilot.press("f3")
        await redrawn(pilot)
        plots = grouped_app.plots
        legend = str(plots.query_one("#plot-legend", Static).render())
        assert legend.count("3 seeds, min–max") == 2 and "#7 control" in legend
        assert "#1,2,3 g-w1 · 3 seeds" in legend or "#4,5,6 g-w1 · 3 seeds" in legend
        (kl10,) = [label for label in plots.drawn["val-loss"] if "g-w10 · " in label]
        # validation loss at epoch e: start − 0.5 e + 0.25, start 7.0, 7.1, 7.2 → mean 7.1 − 0.5 e + 0.25
        assert [x for x, _ in plots.drawn["val-loss"][kl10]] == [1.0, 2.0, 3.0]
        assert [y for _, y in plots.drawn["val-loss"][kl10]] == pytest.approx([6.85, 6.35, 5.85])
        assert len(plots.drawn["val-loss"]) == 3  # two groups and the lone run

        await pilot.press("end")
        await wait_for(pilot, lambda: plots.cursor == 3.0 and not plots.pending, "the cursor's redraw")
        readout = str(plots.query_one("#plot-readout", Static).render())
        assert "validation loss 5.85 ± 0.1 (n 3)" in readout

        await pilot.press("b")
        await redrawn(pilot)
        assert "3 seeds, ±1 sd" in str(plots.query_one("#plot-legend", Static).render())
        await pilot.press("x")  # by step: members are interpolated onto each other's steps, and the titles say so
        await redrawn(pilot)
        assert "groups interpolated" in plots.pane_title(plots.panes[2], grouped_app.session.shown)

        await pilot.press("g")
        await redrawn(pilot)
        assert len(plots.drawn["val-loss"]) == 7  # every run on its own


async def test_a_group_row_summarizes_its_members_and_expands_to_them(grouped_app):
    async with grouped_app.run_test(size=(160, 48)) as pilot:
        table = grouped_app.runs_table
        await wait_for(pilot, lambda: len(table.runs) == 7 and len(table.groups) == 2, "the runs and their groups")
        labels = {key: group.label for key, group in table.groups.items()}
        assert sorted(labels.get(key, key) for key in table.listed) == ["control", "g-w1", "g-w10"]  # members folded in
        cells = row_cells(table, group_row(table, "g-w10"))
        # validation loss at epoch 3: 7.0, 7.1, 7.2 − 1.5 + 0.25 → 5.85 ± 0.1
        assert cells["name"] == "g-w10 · 3 seeds" and cells["status"] == "3 finished" and cells["val_loss"] == "5.85 ± 0.1"

        await pilot.press("f5")
        table.move_cursor(row=table.get_row_index(group_row(table, "g-w10")))
        await pilot.press("enter")
        await wait_for(pilot, lambda: all(name in table.rows for name in KL10), "the members' rows")
        listed, row = table.listed, group_row(table, "g-w10")
        assert listed[listed.index(row) + 1 : listed.index(row) + 4] == KL10  # under their group row

        table.move_cursor(row=table.get_row_index(group_row(table, "g-w10")))
        await pilot.press("space")  # shows every member
        await wait_for(pilot, lambda: {run.name for run in grouped_app.session.shown} == set(KL10), "the members shown")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not any(name in table.rows for name in KL10), "the group folded again")


async def test_the_details_of_two_groups_say_whether_they_differ(grouped_app):
    from scipy import stats

    from engine.metric_table import number
    from tui.screens.run_detail import RunDetail

    async with grouped_app.run_test(size=(160, 48)) as pilot:
        await show_groups(pilot)
        await pilot.press("f5")
        table = grouped_app.runs_table
        table.move_cursor(row=table.get_row_index(group_row(table, "g-w1")))
        await pilot.press("space")  # hide the lone run: the details then hold the two groups
        await pilot.press("s")
        table.move_cursor(row=table.get_row_index(group_row(table, "g-w10")))
        await pilot.press("space")
        table.move_cursor(row=table.get_row_index(group_row(table, "g-w1")))
        await pilot.press("i")
        await wait_for(
            pilot, lambda: isinstance(grouped_app.screen, RunDetail) and grouped_app.screen.comparison, "the comparison"
        )
        shown = str(grouped_app.screen.query_one("#detail-comparison", Static).render())
        # entropy at epoch 3: start − 1.5 − 0.25 per seed, kl 1 starting at 6.0, 6.1, 6.2 and kl 10 at 7.0, 7.1, 7.2
        a, b = [4.25, 4.35, 4.45], [5.25, 5.35, 5.45]
        interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
        sentence = f"entropy at epoch 3: g-w1 is lower than g-w10 by 1 (95 % CI {number(interval.low)} to {number(interval.high)}, Welch df 4.0, n = 3 + 3)."
        assert sentence in shown
        assert "val_loss is left out" in shown


async def test_the_csv_export_holds_a_row_per_group_and_epoch(grouped_app, tmp_path, monkeypatch):
    import csv

    monkeypatch.chdir(tmp_path)
    async with grouped_app.run_test(size=(160, 48)) as pilot:
        await show_groups(pilot)
        await pilot.press("f3", "c")
        await wait_for(pilot, lambda: any(tmp_path.glob("lm-explorer-metrics-*.csv")), "the CSV file")
        (path,) = tmp_path.glob("lm-explorer-metrics-*.csv")
        with path.open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if row["kind"] == "group"]
        assert sorted({row["run"] for row in rows}) == ["group:g-w1", "group:g-w10"]
        last = next(row for row in rows if row["run"] == "group:g-w10" and row["epoch"] == "3")
        assert (last["n"], float(last["val_loss"]), float(last["val_loss_sd"])) == ("3", pytest.approx(5.85), pytest.approx(0.1))


async def test_generations_show_each_member_and_mark_where_they_agree(grouped_app, monkeypatch):
    import dataclasses

    import engine.generate
    from tests.conftest import stub_continuation

    def by_seed(run, seed_text, words, strategy=None):
        """The stub's words, but the third differs for training seed 2: members agree on all words but that one."""
        continuation = stub_continuation(run, seed_text, words, strategy)
        if run.record.config.train.seed == 2:
            continuation.steps[2] = dataclasses.replace(continuation.steps[2], word="differs")
        return continuation

    monkeypatch.setattr(engine.generate, "generate", by_seed)
    async with grouped_app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: len(grouped_app.runs_table.groups) == 2, "the group rows")
        await pilot.press("f5")
        table = grouped_app.runs_table
        table.move_cursor(row=table.get_row_index(group_row(table, "g-w10")))
        await pilot.press("space", "f4", *"the government", "enter")
        panel = grouped_app.generation
        await wait_for(
            pilot,
            lambda: all(panel._current("the government", c) is not None for c in panel.columns) and len(panel.columns) == 3,
            "the members' continuations",
        )
        assert [column.name for column in panel.columns] == KL10  # one column per member, side by side
        cells = {column.name: panel._cell("the government", column) for column in panel.columns}
        for name, cell in cells.items():
            underlined = [span for span in cell.spans if "underline" in str(span.style)]
            assert not cell.plain.startswith("≡")  # they disagree on one word
            assert len(underlined) == 9, name  # the other nine words agree
        assert "differs" in cells["g-w10-s2"].plain


async def test_a_figure_draws_each_group_as_its_mean_with_a_band_and_without_matplotlib_says_how_to_get_it(
    grouped_app, tmp_path, monkeypatch
):
    exports = tmp_path / "exports"
    exports.mkdir()
    monkeypatch.chdir(exports)
    toasts: list[str] = []
    async with grouped_app.run_test(size=(160, 48)) as pilot:
        grouped_app.notify = lambda message, **kwargs: toasts.append(message)  # type: ignore[method-assign]
        await show_groups(pilot)
        plots = grouped_app.plots
        await pilot.press("f3", "]", "]", "]", "P")  # the validation loss pane only
        await wait_for(pilot, lambda: bool(toasts) and toasts[-1].startswith("Saved the validation loss pane"), "the figure")
        (svg,) = exports.glob("lm-explorer-figure-*.svg")
        drawing = svg.read_text()
        labels = [plots.group_legend(line) for line in plots.lines(grouped_app.session.shown) if line.is_group]
        assert len(labels) == 2 and all(drawing.count(f">{label}<") == 1 for label in labels)
        assert ">validation loss<" in drawing and not any(f"{name}<" in drawing for name in KL10 + KL1)
        assert len(re.findall(r'<g id="(?:FillBetween)?PolyCollection_', drawing)) == 2  # a band per group, none for the lone run
        assert toasts[-1].startswith("Saved the validation loss pane of 7 run(s) to ")

        panes = [plots.figure_pane(pane, grouped_app.session.shown) for pane in PANES]
        colors = [{line.label: line.color for line in pane.lines} for pane in panes]
        assert len(colors[0]) == 3 and all(pane == colors[0] for pane in colors)  # one color per line in every panel
        assert len(set(colors[0].values())) == 3

        monkeypatch.setitem(sys.modules, "matplotlib", None)  # as where the report extra is not installed
        await pilot.press("p")
        assert toasts[-1] == f"Figures are drawn by matplotlib, which is not installed: {MATPLOTLIB_INSTALL}."
        assert len(list(exports.glob("lm-explorer-figure-*"))) == 3


async def test_the_sweep_view_puts_each_groups_final_mean_and_spread_against_the_varied_weight(grouped_app):
    async with grouped_app.run_test(size=(160, 48)) as pilot:
        await show_groups(pilot)
        await pilot.press("f3", "w")
        await wait_for(pilot, lambda: isinstance(grouped_app.screen, SweepScreen), "the sweep view")
        view = grouped_app.screen.view
        assert view.setting == "objective.weight" and view.epoch == 3 and not view.log_x
        by_label = {point.label.split(" ", 1)[1]: point for point in view.points}
        # validation loss at epoch 3: start − 1.5 + 0.25, starts 7.0/7.1/7.2 (kl 10) and 6.0/6.1/6.2 (kl 1)
        assert by_label["g-w10"].x == 10 and by_label["g-w10"].values == pytest.approx([5.75, 5.85, 5.95])
        assert by_label["g-w1"].x == 1 and by_label["g-w1"].sd == pytest.approx(0.1)
        text = str(grouped_app.screen.query_one("#sweep-points", Static).render())
        assert "g-w10 · objective.weight 10: 5.85 ± 0.1 (n 3, min–max 5.75–5.95)" in text
        assert grouped_app.screen.heading().startswith("validation loss at epoch 3 vs objective.weight")
        await pilot.press("m")  # the next metric: validation entropy, 0.5 under the loss
        view = grouped_app.screen.view
        assert grouped_app.screen.heading().startswith("validation entropy at epoch 3 vs objective.weight")
        assert [point.mean for point in view.points if point.label.endswith("g-w10")] == pytest.approx([5.35])
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(grouped_app.screen, SweepScreen), "the sweep view to close")


async def test_the_sweep_view_has_a_log_x_over_more_than_a_decade_and_compares_at_the_last_common_epoch(tmp_path, tiny_corpus):
    checkpoints = tmp_path / "checkpoints"
    for weight, epochs in ((0.1, 3), (1.0, 2), (100.0, 3)):
        write_hand_made_run(checkpoints, f"kl{weight:g}", epochs, objective__regularizer="kl", objective__weight=weight)
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 40)) as pilot:
        await show_runs(pilot, "kl0.1", "kl1", "kl100")
        await pilot.press("f3", "w")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), "the sweep view")
        view = app.screen.view
        assert view.log_x and view.epoch == 2  # kl1 stopped at epoch 2
        assert [point.x for point in view.points] == [0.1, 1.0, 100.0]
        assert [point.mean for point in view.points] == pytest.approx([7.0 - 1.0 + 0.25] * 3)
        assert "· log x" in app.screen.heading()

        # kl1 trains its third epoch (its lines grow on disk): the open view moves on to epoch 3 by itself
        third = [line for line in hand_made_metrics(3) if line["epoch"] > 2]
        with (checkpoints / "kl1" / "metrics.jsonl").open("a") as metrics:
            metrics.writelines(json.dumps(line) + "\n" for line in third)
        await wait_for(pilot, lambda: app.screen.view.epoch == 3, "the sweep view at epoch 3")
        assert [point.mean for point in app.screen.view.points] == pytest.approx([7.0 - 1.5 + 0.25] * 3)
        assert app.screen.heading().startswith("validation loss at epoch 3 vs objective.weight")


async def test_a_comparison_the_details_cannot_read_is_said_not_left_blank(grouped_app, tmp_path):
    """A member's metrics.jsonl turned into a link after the app read it: the comparison fails in one notification."""
    from tui.screens.run_detail import RunDetail

    toasts: list[str] = []
    async with grouped_app.run_test(size=(160, 48)) as pilot:
        await show_groups(pilot)
        grouped_app.notify = lambda message, **kwargs: toasts.append(message)  # type: ignore[method-assign]
        metrics = tmp_path / "checkpoints" / KL10[0] / "metrics.jsonl"
        metrics.rename(metrics.with_name("kept.jsonl"))
        metrics.symlink_to(metrics.with_name("kept.jsonl"))
        await pilot.press("f5")
        table = grouped_app.runs_table
        table.move_cursor(row=table.get_row_index(group_row(table, "g-w1")))
        await pilot.press("space", "s")
        table.move_cursor(row=table.get_row_index(group_row(table, "g-w10")))
        await pilot.press("space")
        table.move_cursor(row=table.get_row_index(group_row(table, "g-w1")))
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(grouped_app.screen, RunDetail) and toasts, "the refusal's notification")
        assert "symbolic link" in toasts[-1] or "link" in toasts[-1]
        assert grouped_app.screen.comparison is None


async def test_groups_that_would_read_the_same_get_rows_of_their_own_and_compare_members_at_a_common_epoch(tmp_path, tiny_corpus):
    """Two groups named ``kl`` (one per model size) beside a lone run ``kl``; one member of the second stopped at
    epoch 2 of 3, so that group's figures are its members' at epoch 2, not a finished run's mixed with a stopped one's."""
    from engine.metric_table import plus_minus
    from engine.runs.welch import mean_sd

    checkpoints = tmp_path / "checkpoints"
    for seed in (0, 1):
        write_hand_made_run(checkpoints, f"kl-s{seed}", train__seed=seed)
    write_hand_made_run(checkpoints, "kl-s2", train__seed=2, model__hidden_size=32)
    write_hand_made_run(
        checkpoints, "kl-s3", status="stopped", metrics=hand_made_metrics(2, start=7.1), train__seed=3, model__hidden_size=32
    )
    write_hand_made_run(checkpoints, "kl", model__hidden_size=64)
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.runs_table
        await wait_for(pilot, lambda: len(table.runs) == 5 and len(table.groups) == 2, "the runs and their groups")
        names = sorted(row_cells(table, key)["name"] for key in table.listed)
        assert names == ["kl", "kl (kl-s0 +1) · 2 seeds", "kl (kl-s2 +1) · 2 seeds"]

        partial = group_row(table, "kl (kl-s2 +1)")

        def cells() -> dict[str, str]:
            return row_cells(table, partial)

        # validation loss at epoch 2: start − 0.5 · 2 + 0.25, starts 7.0 (finished) and 7.1 (stopped there)
        at_two = plus_minus(*mean_sd([6.25, 6.35]))
        assert (cells()["epoch"], cells()["val_loss"], cells()["best_val_loss"]) == ("2/3 · 2.00–3.00", at_two, at_two)
        assert cells()["status"] == "1 finished, 1 stopped"
        assert row_cells(table, group_row(table, "kl (kl-s0 +1)"))["epoch"] == "3/3"

        await pilot.press("f5")
        table.move_cursor(row=table.get_row_index(partial))
        await pilot.press("enter", "space")  # its members listed under it, and shown: their histories are read whole
        await wait_for(pilot, lambda: all(app.session.get(name).series for name in ("kl-s2", "kl-s3")), "the histories")
        listed = table.listed
        assert listed[listed.index(partial) + 1 : listed.index(partial) + 3] == ["kl-s2", "kl-s3"]
        assert "kl-s0" not in listed and cells()["val_loss"] == at_two
