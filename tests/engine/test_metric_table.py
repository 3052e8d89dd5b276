"""The one table of metrics: every key a trainer writes has one row, and each row renders as the tables show it."""

from __future__ import annotations

import json

import pytest

from engine.metric_table import (
    BY_KEY,
    COLLAPSE_SIGN,
    EPOCH_SUMMARY,
    METRICS,
    QUANTITIES,
    cells,
    collapsed,
    measured,
    metrics,
)
from engine.runs.protocol import METRICS_FILE
from engine.training.trainer import Trainer
from tests.conftest import tiny_config

LINE_PLACE = {"kind", "step", "epoch", "wall_s", "pairs_per_s"}  # where a line sits and how fast, not a metric


def test_each_quantity_has_one_metric_per_source_and_keys_are_unique():
    assert len(BY_KEY) == len(METRICS) == 2 * len(QUANTITIES)
    for quantity in QUANTITIES:
        assert measured(quantity, "training").key == f"train_{quantity}"
    assert measured("loss", "validation").key == "val_loss"
    assert all(measured(q, "validation").key == q for q in QUANTITIES if q != "loss")


def test_the_epoch_summary_is_the_epoch_training_loss_then_validation():
    assert [m.header for m in EPOCH_SUMMARY] == ["train_loss", "val_loss", "entropy", "kl", "accuracy", "perplexity", "distinct"]


def test_only_validation_distinct_predictions_flags_a_collapse():
    assert COLLAPSE_SIGN.key == "distinct_predictions"
    assert [m.key for m in METRICS if m.collapse] == ["distinct_predictions"]
    assert COLLAPSE_SIGN.render(3) == "3 COLLAPSED"
    assert COLLAPSE_SIGN.render(6.0) == "6"
    assert BY_KEY["train_distinct_predictions"].render(3) == "3"
    assert collapsed({"distinct_predictions": 5}) and not collapsed({"distinct_predictions": 6}) and not collapsed({})
    # a non-finite value read back from a metrics line is shown as such, not taken for a count
    assert COLLAPSE_SIGN.render(float("nan")) == "nan" and not collapsed({"distinct_predictions": float("nan")})


def test_values_render_with_four_digits_and_missing_or_non_finite_as_such():
    shown = metrics("val_loss", "accuracy", "distinct_predictions")
    assert cells({"val_loss": 2.123456, "accuracy": float("nan")}, shown) == ["2.123", "nan", "–"]
    assert BY_KEY["train_loss"].render(float("inf")) == "inf"


def test_an_unknown_key_is_refused():
    with pytest.raises(KeyError):
        metrics("val_loss", "validation_loss")


def test_every_key_a_trainer_writes_is_in_the_table(tmp_path, small_corpus):
    config = tiny_config("keys", small_corpus)
    for _ in Trainer.new(config, tmp_path).events():
        pass
    lines = [json.loads(text) for text in (tmp_path / config.name / METRICS_FILE).read_text().splitlines()]
    step_keys = {key for line in lines if line["kind"] == "step" for key in line} - LINE_PLACE
    epoch_keys = {key for line in lines if line["kind"] == "epoch" for key in line} - LINE_PLACE
    assert step_keys == {m.key for m in METRICS if m.source == "training"}
    assert epoch_keys == set(BY_KEY)
