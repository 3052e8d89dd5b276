"""The `paper` preset lands on the study's printed epoch-5 numbers (ArticlesApril2018.csv).

The study's notebook printed, at epoch 5: control train and val loss 2.858e-4; kl weight 10:
train loss 2.52, val loss 9.87, entropy 253, KL 0.893; kl weight 100: train loss 2.13, val loss
57.0, entropy 219, KL 0.557 (entropy and KL on validation, study-clipped definitions).

Measured here over seeds 0 and 1 (see the issue note): kl 10 train 2.31–2.32, val 10.2–10.5,
entropy 254–270, KL 0.92–0.96; kl 100 train 2.03–2.18, val 60.2–60.8, entropy 225–227,
KL 0.587–0.594. The bands below are the study's values widened to cover that seed spread.
"""

from __future__ import annotations

import pytest

from engine.config import build_run_config
from engine.events import EpochMetrics, RunFinished
from engine.trainer import Trainer
from tests.conftest import nyt_file

STUDY = {
    "control": ({}, {"train_loss": 2.858e-4, "val_loss": 2.858e-4}, 0.02),
    "kl10": ({"objective.regularizer": "kl", "objective.weight": 10.0},
             {"train_loss": 2.52, "val_loss": 9.87, "entropy": 253, "kl": 0.893}, 0.15),
    "kl100": ({"objective.regularizer": "kl", "objective.weight": 100.0},
              {"train_loss": 2.13, "val_loss": 57.0, "entropy": 219, "kl": 0.557}, 0.15),
}


@pytest.mark.slow
@pytest.mark.parametrize("setting", list(STUDY))
def test_paper_preset_reproduces_the_study_at_epoch_5(setting, tmp_path):
    corpus = nyt_file("ArticlesApril2018.csv")
    overrides, expected, tolerance = STUDY[setting]
    config = build_run_config(setting, "paper", {"corpus.paths": [str(corpus)], "train.device": "cpu", **overrides})
    events = list(Trainer.new(config, tmp_path).events())
    assert isinstance(events[-1], RunFinished)
    final = [e for e in events if isinstance(e, EpochMetrics)][-1]
    assert final.epoch == 5 and final.definitions == {"entropy": "study", "kl": "study"}
    for name, study_value in expected.items():
        assert final.metrics[name] == pytest.approx(study_value, rel=tolerance), name
