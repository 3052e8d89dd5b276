"""The training loop: its events, determinism, stop and resume, divergence, and the two batchings."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config.presets import build_run_config
from engine.errors import UserError
from engine.lm.batching import PrefixBatches, iterate
from engine.lm.corpus import Corpus, all_pairs, load_corpus
from engine.lm.model import LanguageModel
from engine.metric_table import BY_KEY
from engine.objective.total import Objective
from engine.runs.checkpoint import RunDirectory, load_run
from engine.training.events import (
    CheckpointSaved,
    EpochMetrics,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepMetrics,
)
from engine.training.trainer import Trainer, evaluate, make_split, resolve_device
from tests.conftest import nyt_file, tiny_config

EPOCHS = 2


def config_for(name: str, corpus: Path, **overrides):
    """Two epochs of a tiny model, a metrics window per batch: the runs this file compares."""
    return tiny_config(name, corpus, **{"train__epochs": EPOCHS, "train__log_every": 1, **overrides})


def events_of(trainer: Trainer) -> list:
    return list(trainer.events())


def events_stopped_at(trainer: Trainer, step: int) -> list:
    """The run's events, a stop asked for once it has reported ``step``."""
    events = []
    for event in trainer.events():
        events.append(event)
        if isinstance(event, StepMetrics) and event.step == step:
            trainer.stop()
    return events


def of_type(events, kind) -> list:
    return [event for event in events if isinstance(event, kind)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_corpus):
    """An uninterrupted two-epoch run and its events."""
    checkpoints = tmp_path_factory.mktemp("reference")
    events = events_of(Trainer.new(config_for("ref", small_corpus), checkpoints))
    assert isinstance(events[-1], RunFinished), events[-1]
    return checkpoints, events


# -- events -------------------------------------------------------------------------------------


def test_event_order(reference):
    _, events = reference
    started = events[0]
    assert isinstance(started, RunStarted)
    spe = started.steps_per_epoch
    assert spe == 5  # 80 training documents of the 100, batches of 16
    assert started.total_steps == EPOCHS * spe and started.start_step == 0
    expected = [RunStarted]
    for _ in range(EPOCHS):
        expected += [StepMetrics] * spe + [EpochMetrics, CheckpointSaved]
    expected.append(RunFinished)
    assert [type(event) for event in events] == expected
    assert [event.step for event in of_type(events, StepMetrics)] == list(range(1, EPOCHS * spe + 1))
    assert [event.epoch for event in of_type(events, StepMetrics)][:spe] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert [(event.epoch, event.step) for event in of_type(events, EpochMetrics)] == [(1, spe), (2, 2 * spe)]
    assert [event.epoch for event in of_type(events, CheckpointSaved)] == [1.0, 2.0]
    assert events[-1].metrics == of_type(events, EpochMetrics)[-1].metrics


def test_run_started_counts_every_pair(reference, small_corpus):
    _, events = reference
    started = events[0]
    corpus = load_corpus(started.config.corpus)
    assert started.vocab_size == len(corpus.vocab) == 576
    assert started.train_pairs + started.val_pairs == corpus.stats.pairs == 1075
    assert started.definitions == {"entropy": "softmax", "kl": "softmax"}
    assert started.device == "cpu"


def test_epoch_metrics_are_complete_and_sane(reference):
    _, events = reference
    for event in of_type(events, EpochMetrics):
        metrics = event.metrics
        assert set(metrics) == set(BY_KEY)  # every metric of the table, training and validation
        assert all(math.isfinite(value) for value in metrics.values())
        # cross-entropy objective, softmax head: val loss = KL = log(perplexity); an untrained-ish model near log V
        assert metrics["val_loss"] == pytest.approx(metrics["kl"], rel=1e-9)
        assert math.log(metrics["perplexity"]) == pytest.approx(metrics["val_loss"], rel=1e-6)
        assert 5.0 < metrics["val_loss"] < 7.0
        assert 0 <= metrics["accuracy"] <= 1
        assert event.collapsed == (metrics["distinct_predictions"] <= 5)
        assert event.definitions == {"entropy": "softmax", "kl": "softmax"}


def test_metrics_file_records_every_window_and_epoch(reference):
    checkpoints, events = reference
    lines = [json.loads(line) for line in (checkpoints / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines].count("step") == len(of_type(events, StepMetrics))
    epochs = [line for line in lines if line["kind"] == "epoch"]
    assert [line["epoch"] for line in epochs] == [1, 2]
    assert epochs[-1]["val_loss"] == events[-1].metrics["val_loss"]
    run = load_run(checkpoints, "ref")
    assert run.record.status == "finished" and run.record.epochs_completed == EPOCHS
    assert run.record.metrics == events[-1].metrics


# -- determinism --------------------------------------------------------------------------------


def test_same_seed_on_cpu_gives_identical_metrics(reference, small_corpus, tmp_path):
    _, first = reference
    second = events_of(Trainer.new(config_for("again", small_corpus), tmp_path))
    assert [event.metrics for event in of_type(second, StepMetrics)] == [event.metrics for event in of_type(first, StepMetrics)]
    assert [event.metrics for event in of_type(second, EpochMetrics)] == [event.metrics for event in of_type(first, EpochMetrics)]


def test_another_seed_gives_other_metrics(reference, small_corpus, tmp_path):
    _, first = reference
    other = events_of(Trainer.new(config_for("seed1", small_corpus, train__seed=1, train__epochs=1), tmp_path))
    assert of_type(other, EpochMetrics)[0].metrics["val_loss"] != of_type(first, EpochMetrics)[0].metrics["val_loss"]


# -- stop and resume ------------------------------------------------------------------------------


def test_stop_between_batches_saves_a_checkpoint_that_loads_and_resumes(small_corpus, tmp_path):
    events = events_stopped_at(Trainer.new(config_for("stopped", small_corpus), tmp_path), 2)
    assert [type(event) for event in events[-3:]] == [StepMetrics, CheckpointSaved, RunStopped]
    assert not of_type(events, EpochMetrics)
    stopped = events[-1]
    assert (stopped.step, stopped.epoch) == (2, pytest.approx(0.4))

    run = load_run(tmp_path, "stopped")
    assert (run.record.status, run.record.step, run.record.batch_in_epoch, run.record.epochs_completed) == ("stopped", 2, 2, 0)
    assert run.record.epoch_progress == pytest.approx(0.4)
    assert run.model(torch.tensor([[3, 4, 5]]), last_only=True).shape == (1, len(run.record.vocab))

    resumed = events_of(Trainer.resume(tmp_path, "stopped"))
    assert isinstance(resumed[0], RunStarted) and resumed[0].start_step == 2
    assert [event.step for event in of_type(resumed, StepMetrics)] == list(range(3, 11))
    assert [event.epoch for event in of_type(resumed, EpochMetrics)] == [1, 2]
    assert isinstance(resumed[-1], RunFinished)
    record = load_run(tmp_path, "stopped").record
    assert (record.status, record.step, record.epochs_completed, record.batch_in_epoch) == ("finished", 10, 2, 0)


def test_resuming_at_an_epoch_boundary_gives_the_uninterrupted_result(reference, small_corpus, tmp_path):
    _, uninterrupted = reference
    first = events_of(Trainer.new(config_for("halves", small_corpus, train__epochs=1), tmp_path))
    assert isinstance(first[-1], RunFinished)
    assert of_type(first, EpochMetrics)[0].metrics == of_type(uninterrupted, EpochMetrics)[0].metrics
    second = events_of(Trainer.resume(tmp_path, "halves", epochs=2))
    assert [event.epoch for event in of_type(second, EpochMetrics)] == [2]
    assert of_type(second, EpochMetrics)[0].metrics == of_type(uninterrupted, EpochMetrics)[1].metrics
    assert second[-1].metrics == uninterrupted[-1].metrics


def test_stopped_after_the_last_batch_of_an_epoch_finishes_that_epoch_first(reference, small_corpus, tmp_path):
    _, uninterrupted = reference
    first = events_stopped_at(Trainer.new(config_for("edge", small_corpus), tmp_path), 5)  # 5: the last batch of epoch 1
    assert isinstance(first[-1], RunStopped)
    # epoch 1 is evaluated and saved with its true training metrics, not an empty window (0.0)
    assert of_type(first, EpochMetrics)[0].metrics == of_type(uninterrupted, EpochMetrics)[0].metrics
    record = load_run(tmp_path, "edge").record
    assert (record.status, record.epochs_completed, record.batch_in_epoch) == ("stopped", 1, 0)
    resumed = events_of(Trainer.resume(tmp_path, "edge"))
    assert [event.epoch for event in of_type(resumed, EpochMetrics)] == [2]
    # the final result does not depend on where the run was paused
    assert resumed[-1].metrics == uninterrupted[-1].metrics


def test_a_stop_asked_for_in_the_last_epochs_last_batch_finishes_the_run(reference, small_corpus, tmp_path):
    _, uninterrupted = reference
    events = events_stopped_at(
        Trainer.new(config_for("last", small_corpus), tmp_path), 10
    )  # 10: the last batch of the last epoch
    assert [type(event) for event in events[-3:]] == [EpochMetrics, CheckpointSaved, RunFinished]
    assert events[-1].metrics == uninterrupted[-1].metrics
    assert load_run(tmp_path, "last").record.status == "finished"


def test_stopped_mid_epoch_resumes_with_that_epochs_running_means(small_corpus, tmp_path):
    """Without dropout the batches after a resume are the same computation, so the epoch's means match."""
    whole = events_of(Trainer.new(config_for("whole", small_corpus, model__dropout=0.0), tmp_path))
    events_stopped_at(Trainer.new(config_for("paused", small_corpus, model__dropout=0.0), tmp_path), 3)  # mid-way through epoch 1
    assert load_run(tmp_path, "paused").record.batch_in_epoch == 3
    resumed = events_of(Trainer.resume(tmp_path, "paused"))
    epoch_1, reference_1 = of_type(resumed, EpochMetrics)[0].metrics, of_type(whole, EpochMetrics)[0].metrics
    for name in ("train_loss", "train_accuracy", "train_entropy", "train_distinct_predictions", "val_loss"):
        assert epoch_1[name] == pytest.approx(reference_1[name], rel=1e-5), name


def test_a_new_run_may_not_reuse_a_name(reference, small_corpus):
    checkpoints, _ = reference
    with pytest.raises(UserError, match="A run named 'ref' already exists"):
        Trainer.new(config_for("ref", small_corpus), checkpoints)


def test_resuming_a_finished_run_needs_more_epochs(reference):
    checkpoints, _ = reference
    with pytest.raises(UserError, match="already finished its 2 epochs; give --epochs above that"):
        Trainer.resume(checkpoints, "ref")


def test_resuming_with_another_corpus_is_refused(reference, tmp_path):
    checkpoints, _ = reference
    other = tmp_path / "other.txt"
    other.write_text("a different corpus entirely\nwith other words in it\n", encoding="utf-8")
    with pytest.raises(
        UserError, match=r"Run 'ref' was trained on another corpus \(fingerprint [0-9a-f]{12}…, this one is [0-9a-f]{12}…\)"
    ):
        Trainer.resume(checkpoints, "ref", epochs=3, corpus_paths=[str(other)])


def test_a_bad_corpus_fails_the_run_as_a_user_error_and_writes_nothing(tmp_path):
    missing = tmp_path / "missing.txt"
    checkpoints = tmp_path / "checkpoints"
    events = events_of(Trainer.new(tiny_config("nothing", missing), checkpoints))
    assert len(events) == 1 and isinstance(events[0], RunFailed)
    assert events[0].user_error and "does not exist" in events[0].message
    assert not (checkpoints / "nothing").exists()


# -- divergence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("log_every", [1, 3])
def test_a_huge_learning_rate_diverges_naming_the_step_and_keeps_the_last_checkpoint(small_corpus, tmp_path, log_every):
    # Adam moves every weight by about lr on its first step: with lr 1e35 the linear head's raw outputs
    # overflow float32 at step 2 and the MSE becomes inf.
    config = config_for(
        "blowup", small_corpus, train__lr=1e35, objective__loss="mse", model__head="linear", train__log_every=log_every
    )
    events = events_of(Trainer.new(config, tmp_path))
    diverged = events[-1]
    assert isinstance(diverged, RunDiverged)
    assert diverged.step == 2
    assert "non-finite at step 2 (epoch 1)" in diverged.message and "checkpoint from epoch 0 is kept" in diverged.message
    assert [event.step for event in of_type(events, StepMetrics)] == ([1] if log_every == 1 else [])
    assert not of_type(events, EpochMetrics)

    run = load_run(tmp_path, "blowup")
    assert run.record.status == "diverged" and run.record.message == diverged.message
    torch.manual_seed(config.train.seed)
    initial = LanguageModel(len(run.record.vocab), config.model)
    for name, tensor in run.model.state_dict().items():
        assert torch.isfinite(tensor).all(), name
        assert torch.equal(tensor, initial.state_dict()[name]), f"{name} is not the last good checkpoint's"


def test_a_huge_weight_diverges(small_corpus, tmp_path):
    # 1e39 is a finite weight, but above float32's range: weight × entropy is inf from the first step
    config = config_for("heavy", small_corpus, objective__regularizer="entropy", objective__weight=1e39)
    events = events_of(Trainer.new(config, tmp_path))
    assert isinstance(events[-1], RunDiverged) and events[-1].step == 1
    assert load_run(tmp_path, "heavy").record.status == "diverged"


def test_every_metric_line_carries_wall_time_and_throughput_and_a_resume_continues_the_clock(small_corpus, tmp_path):
    config = config_for("clock", small_corpus, train__log_every=3)
    events = events_of(Trainer.new(config, tmp_path))
    assert isinstance(events[-1], RunFinished)
    first = RunDirectory(tmp_path, "clock").read_metrics()
    assert {line["kind"] for line in first} == {"step", "epoch"}
    walls = [line["wall_s"] for line in first]
    assert all(wall > 0 for wall in walls) and walls == sorted(walls)
    assert all(line["pairs_per_s"] > 0 for line in first)
    resumed = events_of(Trainer.resume(tmp_path, "clock", epochs=EPOCHS + 1))
    assert isinstance(resumed[-1], RunFinished)
    later = [line for line in RunDirectory(tmp_path, "clock").read_metrics() if line["epoch"] > EPOCHS]
    assert later and min(line["wall_s"] for line in later) > max(walls)


def test_adam_moments_overflowing_under_a_finite_loss_diverge(small_corpus, tmp_path):
    # weight 1e30: the loss (~1e30) stays finite, but its gradients square past float32's range in
    # Adam's second moment, after which the run would go on without learning
    config = config_for("moments", small_corpus, objective__regularizer="entropy", objective__weight=1e30, train__log_every=3)
    events = events_of(Trainer.new(config, tmp_path))
    assert isinstance(events[-1], RunDiverged) and events[-1].step == 3
    assert not of_type(events, StepMetrics)


# -- batching -------------------------------------------------------------------------------------


def scored_pairs(batches) -> Counter:
    """Every (prefix, next word) a split's batches score, as token tuples."""
    pairs: Counter = Counter()
    for batch in iterate(batches, seed=None):
        if batch.last_only:
            for row, target in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
                pairs[(tuple(token for token in row if token), target)] += 1
        else:
            for row, targets in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
                for position, target in enumerate(targets):
                    if target:
                        pairs[(tuple(row[: position + 1]), target)] += 1
    return pairs


def test_document_and_prefix_batching_score_the_same_pairs(small_corpus):
    document = tiny_config("doc", small_corpus)
    prefix = tiny_config("pfx", small_corpus, train__batching="prefix")
    corpus = load_corpus(document.corpus)
    by_document, by_prefix = make_split(document, corpus), make_split(prefix, corpus)
    assert by_document.train.pairs == by_prefix.train.pairs and by_document.val.pairs == by_prefix.val.pairs
    assert by_document.train.pairs + by_document.val.pairs == corpus.stats.pairs
    assert scored_pairs(by_document.train) == scored_pairs(by_prefix.train)
    assert scored_pairs(by_document.val) == scored_pairs(by_prefix.val)
    assert sum(scored_pairs(by_document.val).values()) == by_document.val.pairs

    torch.manual_seed(0)
    model = LanguageModel(len(corpus.vocab), document.model)
    objective = Objective(document.objective)
    document_totals = evaluate(model, by_document.val, objective, torch.device("cpu"))
    prefix_totals = evaluate(model, by_prefix.val, objective, torch.device("cpu"))
    assert document_totals.count == prefix_totals.count == by_document.val.pairs


def keras_pad_sequences(sequences: list[list[int]], maxlen: int) -> np.ndarray:
    """keras.preprocessing.sequence.pad_sequences(padding='pre', truncating='pre', value=0)."""
    padded = np.zeros((len(sequences), maxlen), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        kept = sequence[-maxlen:]
        padded[row, maxlen - len(kept) :] = kept
    return padded


def test_prefix_rows_by_hand():
    corpus = Corpus(documents=[[5, 9, 2], [3, 4]], vocab=[f"w{i}" for i in range(10)], sources=[], fingerprint="")
    batches = PrefixBatches(corpus, all_pairs(corpus, [0, 1]), batch_size=8, width=corpus.stats.longest - 1)
    batch = next(iterate(batches, seed=None))
    assert batch.last_only
    assert batch.inputs.tolist() == [[0, 5], [5, 9], [0, 3]]
    assert batch.targets.tolist() == [9, 2, 4]


def test_paper_prefix_rows_are_pre_padded_like_keras(small_corpus):
    config = tiny_config("paper", small_corpus, preset="paper")
    corpus = load_corpus(config.corpus)
    split = make_split(config, corpus)
    # Bansal: every n-gram doc[:i+1], padded 'pre' to the longest n-gram; predictors all but the last column
    ngrams = [doc[: i + 1] for doc in corpus.documents for i in range(1, len(doc))]
    longest = max(len(ngram) for ngram in ngrams)
    assert split.train.width == longest - 1 == 11
    for batches in (split.train, split.val):
        members = batches.epoch(seed=3)[0]
        batch = batches.build(members)
        expected = keras_pad_sequences([corpus.documents[d][: t + 1] for d, t in batches.pair_rows[members]], longest)
        assert np.array_equal(batch.inputs.numpy(), expected[:, :-1])
        assert np.array_equal(batch.targets.numpy(), expected[:, -1])


def test_paper_split_cuts_pairs_not_documents(small_corpus):
    config = tiny_config("paper", small_corpus, preset="paper")
    corpus = load_corpus(config.corpus)
    split = make_split(config, corpus)
    assert (split.train.pairs, split.val.pairs) == (1075 - 215, 215)  # round(0.2 × 1075) = 215 held out
    train_docs = {int(d) for d, _ in split.train.pair_rows}
    val_docs = {int(d) for d, _ in split.val.pair_rows}
    assert train_docs & val_docs  # the study's split puts pairs of one headline on both sides


def test_paper_split_on_the_studys_file():
    config = build_run_config("paper", "paper", {"corpus.paths": [str(nyt_file("ArticlesApril2017.csv"))]})
    corpus = load_corpus(config.corpus)
    split = make_split(config, corpus)
    assert (split.train.pairs, split.val.pairs, split.train.width) == (3845, 961, 18)


def test_paper_model_starts_from_keras_defaults():
    config = build_run_config("paper", "paper")
    torch.manual_seed(0)
    model = LanguageModel(300, config.model)
    hidden, embedding = 100, 10
    assert model.embedding.weight.abs().max().item() <= 0.05
    assert model.embedding.weight.std().item() == pytest.approx(0.05 / math.sqrt(3), rel=0.1)
    glorot_input = math.sqrt(6 / (embedding + 4 * hidden))
    assert model.lstm.weight_ih_l0.abs().max().item() <= glorot_input
    assert model.lstm.weight_ih_l0.abs().max().item() > 0.95 * glorot_input
    recurrent = model.lstm.weight_hh_l0
    assert torch.allclose(recurrent.T @ recurrent, torch.eye(hidden), atol=1e-5)  # orthogonal
    bias = model.lstm.bias_ih_l0
    assert bias[hidden : 2 * hidden].eq(1).all() and bias[:hidden].eq(0).all() and bias[2 * hidden :].eq(0).all()
    assert model.lstm.bias_hh_l0.eq(0).all()
    glorot_output = math.sqrt(6 / (hidden + 300))
    assert model.output.weight.abs().max().item() <= glorot_output
    assert model.output.bias.eq(0).all()


# -- devices ------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_devices_without_a_gpu():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="Device 'cuda' was asked for but this machine has no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda:1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_devices_with_a_gpu():
    assert resolve_device("auto").type == "cuda"
    with pytest.raises(UserError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_failure_status_is_recorded_when_the_device_is_refused(small_corpus, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks a refused CUDA device")
    events = events_of(Trainer.new(tiny_config("gpu", small_corpus, train__device="cuda"), tmp_path))
    assert isinstance(events[-1], RunFailed) and events[-1].user_error
    assert not RunDirectory(tmp_path, "gpu").exists()
