"""Measures 2 and 3 of the bench read one set of timings: their rows, and the FLOPs of the trainer's own batches."""

from __future__ import annotations

import itertools

import pytest

from bench import breakdown, hardware, overhead
from bench.context import Bench
from bench.timing import MatmulRun, Repetition, TrainerTiming
from bench.workloads import STUDY_OBJECTIVE, Workload
from engine.lm.batching import iterate
from engine.lm.corpus import load_corpus
from engine.training.trainer import epoch_seed, make_split, resolve_device
from tests.conftest import tiny_config


def bench_with(tmp_path, small_corpus) -> Bench:
    """W1 on the small corpus (the paper preset: prefix batching), W2 missing its data."""
    workloads = {
        "W1": Workload("W1", [str(small_corpus)], dict(STUDY_OBJECTIVE)),
        "W2": Workload("W2", [], dict(STUDY_OBJECTIVE), missing="no NYT files here"),
    }
    return Bench(True, "cpu", tmp_path, tmp_path, workloads)


def test_overhead_and_hardware_rows_read_the_same_timings_and_skip_the_same_workloads(tmp_path, small_corpus):
    bench = bench_with(tmp_path, small_corpus)
    config = bench.workloads["W1"].config("w1", "cpu")
    trainer = TrainerTiming(
        config, train_pairs=800, steps_per_epoch=25, reps=[Repetition(96, seconds=2.0, train_seconds=1.5)], steps=3
    )
    matmul = MatmulRun(32, config.model.hidden_size, 600, resolve_device("cpu"))
    matmul.flops, matmul.seconds = 4e9, 2.0
    bench.once(
        "overhead", lambda: {"W1": overhead.Timings(trainer, [Repetition(96, 1.0, 0.8)], matmul), "W2": "no NYT files here"}
    )

    cost = overhead.measure(bench)
    assert [(row.workload, row.value) for row in cost] == [("W1", "64 pairs/s"), ("W2", "skipped: no NYT files here")]
    assert cost[0].ratio == pytest.approx(64 / 96)  # a partial run: the train phase alone, against the plain loop's pairs/s

    flops, pairs = hardware.training_flops(trainer, bench.workloads["W1"].corpus())
    rate = hardware.measure(bench)
    assert [row.workload for row in rate] == ["W1", "W2"] and rate[1].value == "skipped: no NYT files here"
    assert rate[0].ratio == pytest.approx(flops / pairs * 64 / 2e9)


@pytest.mark.parametrize("batching", ["prefix", "document"])
def test_training_flops_count_the_batches_the_trainer_trains_first(small_corpus, batching):
    config = tiny_config("flops", small_corpus, train__batching=batching, model__num_layers=2)
    corpus = load_corpus(config.corpus)
    steps = 3
    first = list(itertools.islice(iterate(make_split(config, corpus).train, epoch_seed(config.train.seed, 0)), steps))
    positions = sum(
        batch.inputs.numel() if batch.pads is None else batch.pads + len(batch.inputs) * (batch.inputs.shape[1] - batch.pads)
        for batch in first
    )
    pairs = sum(len(batch.targets) if batch.last_only else int((batch.targets > 0).sum()) for batch in first)
    e, h, v = config.model.embedding_dim, config.model.hidden_size, len(corpus.vocab)
    lstm = 2 * 4 * h * (e + h) + 2 * 4 * h * (h + h)
    expected = 3.0 * (positions * lstm + pairs * 2 * h * v)

    timing = TrainerTiming(config, train_pairs=0, steps_per_epoch=0, steps=steps)
    assert hardware.training_flops(timing, corpus) == (pytest.approx(expected), pairs)


def test_the_step_breakdown_times_every_phase_of_the_trainers_own_steps(small_corpus):
    """Phases of real steps, the token steps as the padding trajectory runs them, and positive floor rates."""
    config = tiny_config("phases", small_corpus, preset="paper")
    corpus = load_corpus(config.corpus)
    from engine.lm.model import LanguageModel
    from engine.objective.total import Objective

    split = make_split(config, corpus)
    cpu = resolve_device("cpu")
    phases = breakdown.time_phases(
        LanguageModel(len(corpus.vocab), config.model), split.train, Objective(config.objective), config.train, cpu, 3
    )
    assert min(phases.data, phases.lstm, phases.head, phases.optimizer) > 0
    assert phases.total == pytest.approx(phases.data + phases.lstm + phases.head + phases.optimizer)
    assert phases.scored == pytest.approx(config.train.batch_size, rel=0.5)
    assert 0 < phases.token_steps <= config.train.batch_size * split.train.width
    assert breakdown.matmul_rate(8, 16, 32, cpu, repeats=3) > 0 and breakdown.copy_bandwidth(cpu, repeats=2) > 0
