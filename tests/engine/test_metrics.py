"""Metric definitions and their totals, on batches small enough to work out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.metric_table import COLLAPSE_THRESHOLD, QUANTITIES, is_collapsed, line_fields
from engine.objective.metrics import (
    DEFINITIONS,
    MetricTotals,
    Outputs,
    cross_entropy,
    definitions_for,
    softmax_entropy,
    softmax_kl,
    study_entropy,
    study_kl,
)

# Four predictions over 3 words. By hand (log-sum-exp per row, CE = lse − z_target):
#   row 0: z = [2, 0.5, −1], target 0: lse = 2.241311, CE = 0.241311, argmax 0 (right)
#   row 1: z = [2, 0.5, −1], target 1: CE = 2.241311 − 0.5 = 1.741311, argmax 0 (wrong)
#   row 2: z = [0, 3, 0],    target 1: lse = 3 + log(1 + 2e^−3) = 3.094923, CE = 0.094923, argmax 1 (right)
#   row 3: z = [−1, 0, 1],   target 0: lse = 1 + log(1 + e^−1 + e^−2) = 1.407606, CE = 2.407606, argmax 2 (wrong)
# accuracy = 2/4 = 0.5; distinct argmax words = {0, 1, 2} = 3
# mean CE = (0.241311 + 1.741311 + 0.094923 + 2.407606) / 4 = 4.485151 / 4 = 1.121288
# perplexity = e^1.121288 = 3.068804
RAW = torch.tensor([[2.0, 0.5, -1.0], [2.0, 0.5, -1.0], [0.0, 3.0, 0.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
TARGET = torch.tensor([0, 1, 1, 0])
CE_ROWS = [0.2413112967, 1.7413112967, 0.0949229564, 2.4076059644]
MEAN_CE = sum(CE_ROWS) / 4


def totals_for(head: str, raw=RAW, target=TARGET, losses=None) -> MetricTotals:
    totals = MetricTotals()
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=raw.dtype) if losses is None else losses
    totals.add(Outputs(raw, head), target, losses)
    return totals


def test_cross_entropy_rows_by_hand():
    one_hot = F.one_hot(TARGET, 3).to(torch.float64)
    assert cross_entropy(F.log_softmax(RAW, -1), one_hot).tolist() == pytest.approx(CE_ROWS, abs=1e-9)


def test_summary_of_a_softmax_batch():
    summary = totals_for("softmax").summary()
    assert summary["loss"] == pytest.approx(2.5)  # mean of the losses given: (1 + 2 + 3 + 4) / 4
    assert summary["accuracy"] == 0.5
    assert summary["distinct_predictions"] == 3
    assert summary["perplexity"] == pytest.approx(3.068804, abs=1e-6)
    assert summary["perplexity"] == pytest.approx(math.exp(MEAN_CE), rel=1e-9)
    # softmax KL against one-hot is the cross-entropy
    assert summary["kl"] == pytest.approx(MEAN_CE, abs=1e-9)
    expected_entropy = softmax_entropy(F.log_softmax(RAW, -1)).mean().item()
    assert summary["entropy"] == pytest.approx(expected_entropy, abs=1e-12)


def test_line_fields_name_a_summary_as_the_metric_table_does():
    summary = totals_for("softmax").summary()
    assert set(summary) == set(QUANTITIES)
    assert set(line_fields(summary, "training")) == {
        "train_loss",
        "train_entropy",
        "train_kl",
        "train_accuracy",
        "train_perplexity",
        "train_distinct_predictions",
    }
    validation = line_fields(summary, "validation")
    assert set(validation) == {"val_loss", "entropy", "kl", "accuracy", "perplexity", "distinct_predictions"}
    assert validation["val_loss"] == summary["loss"]


def test_a_linear_head_uses_the_study_definitions_but_perplexity_stays_softmax():
    summary = totals_for("linear").summary()
    # study entropy per row, clip(z) to [1e-7, 1]:
    #   rows 0, 1: [1, 0.5, 1e-7] → 0.346575202;  row 2: [1e-7, 1, 1e-7] → 2 × 1.6118e-6 = 3.2236e-6
    #   row 3: [1e-7, 1e-7, 1] → 3.2236e-6
    h_half = 0.3465752021
    h_two_eps = -2 * 1e-7 * math.log(1e-7)
    assert summary["entropy"] == pytest.approx((2 * h_half + 2 * h_two_eps) / 4, abs=1e-10)
    # study KL per row, Σ clip(t) log(clip(t)/clip(z)):
    #   row 0: 1e-7 (log 1e-7 − log 0.5) = −1.5425e-6 (the 1e-7 · log(1e-7/1e-7) term is 0)
    #   row 1: 1e-7 log 1e-7 + log 2 = 0.6931455688
    #   row 2: t = [0,1,0], z clipped [1e-7, 1, 1e-7]: 0 + 0 + 0 = 0
    #   row 3: t = [1,0,0], z clipped [1e-7, 1e-7, 1]: 1·log(1/1e-7) + 1e-7·log(1e-7) = 16.118096 − 1.6e-6
    kl_rows = [-1.5424948e-6, 0.6931455688, 0.0, 16.1180956509 - 1.6118096e-6]
    assert summary["kl"] == pytest.approx(sum(kl_rows) / 4, abs=1e-8)
    assert summary["perplexity"] == pytest.approx(math.exp(MEAN_CE), rel=1e-9)
    assert summary["accuracy"] == 0.5 and summary["distinct_predictions"] == 3


def test_study_definitions_directly():
    assert study_entropy(torch.tensor([[2.0, 0.5, -1.0]], dtype=torch.float64)).item() == pytest.approx(0.3465752021, abs=1e-10)
    target = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    assert study_kl(target, torch.tensor([[2.0, 0.5, -1.0]], dtype=torch.float64)).item() == pytest.approx(
        0.6931455688, abs=1e-10
    )


def test_softmax_kl_is_zero_against_itself_and_handles_zero_targets():
    log_p = F.log_softmax(RAW, -1)
    assert softmax_kl(log_p.exp(), log_p).abs().max().item() < 1e-12
    one_hot = F.one_hot(TARGET, 3).to(torch.float64)  # 0 · log 0 must count as 0, not NaN
    assert torch.isfinite(softmax_kl(one_hot, log_p)).all()


def test_merging_windows_equals_adding_everything_at_once():
    whole = totals_for("softmax")
    first = totals_for("softmax", RAW[:2], TARGET[:2], torch.tensor([1.0, 2.0], dtype=torch.float64))
    second = totals_for("softmax", RAW[2:], TARGET[2:], torch.tensor([3.0, 4.0], dtype=torch.float64))
    merged = MetricTotals()
    merged.merge(first)
    merged.merge(MetricTotals())  # an empty window changes nothing
    merged.merge(second)
    assert merged.count == 4
    assert merged.summary() == pytest.approx(whole.summary(), abs=1e-12)
    # the first half alone predicts only word 0
    assert first.summary()["distinct_predictions"] == 1


def test_an_empty_total_summarizes_to_zeros():
    summary = MetricTotals().summary()
    assert summary["loss"] == 0.0 and summary["accuracy"] == 0.0 and summary["distinct_predictions"] == 0


def test_definitions_for_each_head():
    assert definitions_for("linear") == {"entropy": "study", "kl": "study"}
    assert definitions_for("softmax") == {"entropy": "softmax", "kl": "softmax"}
    assert set(DEFINITIONS) == {"study", "softmax"}
    assert "1e-7" in DEFINITIONS["study"]


@pytest.mark.parametrize(("distinct", "collapsed"), [(0, True), (1, True), (5, True), (6, False), (300, False)])
def test_is_collapsed(distinct, collapsed):
    assert COLLAPSE_THRESHOLD == 5
    assert is_collapsed(distinct) is collapsed


@pytest.mark.parametrize("head", ["linear", "softmax"])
def test_metrics_from_word_indices_equal_the_one_hot_definitions(head):
    """The totals take KL and CE from target indices; they must equal the dense definitions."""
    raw = torch.tensor([[2.0, 0.5, -1.0, 1e-9], [0.3, 1.5, 0.2, 0.0], [-2.0, 0.9, 4.0, 0.5]], dtype=torch.float64)
    target = torch.tensor([0, 3, 1])
    one_hot = F.one_hot(target, 4).to(raw.dtype)
    outputs = Outputs(raw, head)
    expected_kl = study_kl(one_hot, raw) if head == "linear" else softmax_kl(one_hot, F.log_softmax(raw, -1))
    assert outputs.kl_to_words(target).tolist() == pytest.approx(expected_kl.tolist(), rel=1e-12, abs=1e-12)
    expected_ce = cross_entropy(F.log_softmax(raw, -1), one_hot)
    assert outputs.cross_entropy_to_words(target).tolist() == pytest.approx(expected_ce.tolist(), rel=1e-12)
    expected_entropy = study_entropy(raw) if head == "linear" else softmax_entropy(F.log_softmax(raw, -1))
    assert outputs.entropy().tolist() == pytest.approx(expected_entropy.tolist(), rel=1e-12)
