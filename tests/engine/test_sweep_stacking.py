"""A sweep's runs stack into one trainer process when asked (and by default on CUDA), each still its own run."""

from __future__ import annotations

import pytest

from engine.cli.main import main
from engine.jobs.controller import Controller
from engine.jobs.placement import should_stack
from engine.runs.checkpoint import RunDirectory
from engine.training.trainer import Trainer
from tests.conftest import tiny_config
from tests.engine.test_controller import CountingExecutor


def test_stacking_is_the_default_on_cuda_only():
    assert should_stack(None, "cpu") is False
    assert should_stack(True, "cpu") is True and should_stack(False, "cuda:0") is False


def test_a_stacked_sweep_is_one_trainer_process_whose_runs_match_runs_trained_alone(tiny_corpus, tmp_path):
    configs = [
        tiny_config(f"s{weight:g}", tiny_corpus, objective__regularizer="kl", objective__weight=weight, train__epochs=2)
        for weight in (0.0, 1.0, 10.0)
    ]
    executor = CountingExecutor()
    controller = Controller(tmp_path / "sweep", executor)
    names = controller.queue(configs)
    assert controller.plan_jobs(names, stack=True, device="cpu") == [tuple(names)]
    statuses = controller.run_queue(names, parallel=2, device="cpu", stack=True)
    assert statuses == dict.fromkeys(names, "finished")
    assert len(executor.jobs) == 1 and executor.jobs[0].spec.stacked and executor.jobs[0].spec.runs == tuple(names)
    for config in configs:
        alone = tmp_path / "alone"
        assert type(list(Trainer.new(config, alone).events())[-1]).__name__ == "RunFinished"
        stacked = [line for line in RunDirectory(tmp_path / "sweep", config.name).read_metrics() if line["kind"] == "epoch"]
        single = [line for line in RunDirectory(alone, config.name).read_metrics() if line["kind"] == "epoch"]
        for a, b in zip(stacked, single, strict=True):
            keys = [key for key in b if key not in ("wall_s", "pairs_per_s") and isinstance(b[key], float)]
            assert {key: a[key] for key in keys} == pytest.approx({key: b[key] for key in keys}, rel=1e-4, abs=1e-7)


def test_runs_that_cannot_stack_train_alone(tiny_corpus, tmp_path):
    configs = [
        tiny_config("lr-a", tiny_corpus, objective__regularizer="kl", objective__weight=1.0),
        tiny_config("lr-b", tiny_corpus, objective__regularizer="kl", objective__weight=1.0, train__lr=0.01),
    ]
    controller = Controller(tmp_path)
    names = controller.queue(configs)
    assert controller.plan_jobs(names, stack=True, device="cpu") == [("lr-a",), ("lr-b",)]


def test_a_sweep_without_a_regularizer_is_refused(small_corpus, tmp_path, capsys):
    code = main(["sweep", "--weights", "1,2,3", "--corpus", str(small_corpus), "--checkpoints", str(tmp_path / "ck")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--regularizer is none" in err
    assert not (tmp_path / "ck").exists()
