"""Seed groups in the app: one mean line with a band per group, its readout, the toggles (Pilot, hand-made runs)."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from tests.conftest import hand_made_metrics, wait_for, write_hand_made_run
from tests.tui.test_app import make_app, redrawn, show_runs

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


async def test_a_seed_group_is_one_mean_line_with_a_band_and_a_readout(grouped_app):
    async with grouped_app.run_test(size=(160, 48)) as pilot:
        await show_runs(pilot, *KL10, *KL1, "control")
        await pilot.press("f3")
        await redrawn(pilot)
        plots = grouped_app.plots
        legend = str(plots.query_one("#plot-legend", Static).render())
        assert legend.count("3 seeds, min–max") == 2 and "control" not in legend and "#7 ce" in legend
        (kl10,) = [label for label in plots.drawn["val-loss"] if "kl 10" in label]
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
