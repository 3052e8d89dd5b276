"""A stacked sweep: each member trains as its solo twin, writes a solo run folder, and meets its own fate."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.cli.main import main
from engine.config.models import RunConfig
from engine.errors import UserError
from engine.lm.corpus import load_corpus
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
from engine.training.stacked import (
    StackedTrainer,
    activation_bytes,
    default_memory_budget,
    reuse_large_allocations,
    stack_groups,
    stack_key,
)
from engine.training.trainer import Trainer
from tests.conftest import tiny_config

EPOCHS = 2
RELATIVE = 1e-4
SETTINGS_OF_RECORD = ("created", "updated", "name", "config")

OBJECTIVES = {
    "mse-kl": ({"model__head": "linear", "objective__loss": "mse", "objective__regularizer": "kl"}, [0.0, 0.1, 10.0]),
    "mse-entropy": ({"model__head": "linear", "objective__loss": "mse", "objective__regularizer": "entropy"}, [1e-3, 1.0]),
    "ce-confidence": ({"objective__loss": "ce", "objective__regularizer": "confidence"}, [0.1, 1.0]),
}


def config_for(name: str, corpus: Path, **overrides) -> RunConfig:
    """Two epochs of a tiny model with dropout, a live-metrics window every 2 batches."""
    return tiny_config(name, corpus, **{"train__epochs": EPOCHS, "train__log_every": 2, "model__dropout": 0.2, **overrides})


def sweep(corpus: Path, objective: dict, weights: list[float], prefix: str, **overrides) -> list[RunConfig]:
    return [
        config_for(f"{prefix}-{i}", corpus, **objective, objective__weight=weight, **overrides)
        for i, weight in enumerate(weights)
    ]


def solo_twin(config: RunConfig, checkpoints: Path) -> list:
    twin = config.model_copy(update={"name": f"solo-{config.name}"})
    return list(Trainer.new(twin, checkpoints).events())


def of_member(events: list, name: str) -> list:
    return [event for event in events if event.run_name == name]


TIMING = ("wall_s", "pairs_per_s")  # the stack's own clock: present, not equal


def assert_close(stacked: dict[str, float], solo: dict[str, float], relative: float = RELATIVE) -> None:
    assert stacked.keys() == solo.keys()
    for key, value in solo.items():
        if key not in TIMING:
            assert stacked[key] == pytest.approx(value, rel=relative, abs=1e-12), key


def assert_same_run(stacked_events: list, solo_events: list, relative: float = RELATIVE) -> None:
    """Same event sequence (types, steps, epochs) and per-epoch and live metrics within RELATIVE."""
    assert [type(event) for event in stacked_events] == [type(event) for event in solo_events]
    for mine, theirs in zip(stacked_events, solo_events, strict=True):
        if isinstance(mine, (StepMetrics, EpochMetrics)):
            assert (mine.step, mine.epoch) == (theirs.step, theirs.epoch)
            assert_close(mine.metrics, theirs.metrics, relative)


@pytest.fixture(params=["per-member", "block-diagonal"])
def form(request, monkeypatch):
    """Both recurrent forms of :mod:`engine.lm.stacked_model` on this CPU: block-diagonal is the one CUDA would choose."""
    from engine.lm import stacked_model

    choose = stacked_model.recurrent_form
    if request.param == "block-diagonal":
        monkeypatch.setattr(
            stacked_model, "recurrent_form", lambda device, shell, members: choose(torch.device("cuda"), shell, members)
        )
    return request.param


@pytest.mark.parametrize("kind", OBJECTIVES, ids=list(OBJECTIVES))
def test_each_member_trains_as_its_solo_twin(kind, small_corpus, tmp_path, form):
    objective, weights = OBJECTIVES[kind]
    configs = sweep(small_corpus, objective, weights, kind)
    events = list(StackedTrainer.new(configs, tmp_path).events())
    assert {type(event) for event in events[-len(configs) :]} == {RunFinished}
    for config in configs:
        solo = solo_twin(config, tmp_path)
        mine = of_member(events, config.name)
        assert_same_run(mine, solo)
        assert sum(isinstance(event, EpochMetrics) for event in mine) == EPOCHS
        stacked_weights = load_run(tmp_path, config.name).model.state_dict()
        for name, tensor in load_run(tmp_path, f"solo-{config.name}").model.state_dict().items():
            # the solo head's closed-form gradient and the stack's autograd agree to rounding; Adam spreads that to ~1e-5
            torch.testing.assert_close(stacked_weights[name], tensor, rtol=1e-3, atol=1e-4, msg=name)


def test_a_mixed_stack_matches_its_solo_twins_two_layers_prefix_batching(small_corpus, tmp_path):
    """Different terms in one stack (scored per group, member order restored), two LSTM layers with dropout between them."""
    shared = {"model__head": "linear", "model__num_layers": 2, "train__batching": "prefix", "train__batch_size": 64}
    configs = [
        config_for("mix-kl", small_corpus, **shared, objective__loss="mse", objective__regularizer="kl", objective__weight=1.0),
        config_for(
            "mix-ls",
            small_corpus,
            **shared,
            objective__loss="ce",
            objective__regularizer="label-smoothing",
            objective__weight=0.1,
        ),
        config_for("mix-none", small_corpus, **shared, objective__loss="mse", objective__regularizer="kl", objective__weight=0.0),
        config_for("mix-kl2", small_corpus, **shared, objective__loss="mse", objective__regularizer="kl", objective__weight=0.5),
    ]
    events = list(StackedTrainer.new(configs, tmp_path).events())
    for config in configs:
        assert_same_run(of_member(events, config.name), solo_twin(config, tmp_path))


def test_the_block_diagonal_form_with_prefix_batching_matches_the_solo_twins(small_corpus, tmp_path, form):
    """The last position of each prefix (dropout on a strided view in the solo run), one layer, mixed terms.

    Within 3e-4: with fused Adam the MSE + KL prefix runs' training loss and KL came out 1.15e-4
    apart after 2 epochs (rounding of the fused head against the stack's autograd, which Adam
    amplifies where a gradient is near zero); with the for-loop Adam within 1e-4.
    """
    shared = {"model__head": "linear", "train__batching": "prefix", "train__batch_size": 64}
    configs = [
        config_for(
            f"prefix-{i}", small_corpus, **shared, objective__loss="mse", objective__regularizer="kl", objective__weight=weight
        )
        for i, weight in enumerate([0.0, 0.5, 10.0])
    ]
    events = list(StackedTrainer.new(configs, tmp_path).events())
    for config in configs:
        assert_same_run(of_member(events, config.name), solo_twin(config, tmp_path), relative=3e-4)


def test_the_recurrent_form_is_block_diagonal_on_cuda_unless_dropout_sits_between_layers(small_corpus):
    from engine.lm.model import LanguageModel
    from engine.lm.stacked_model import WIDE_HIDDEN_LIMIT, recurrent_form

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    one_layer = LanguageModel(50, tiny_config("f", small_corpus, model__dropout=0.2).model)
    two_layers = LanguageModel(50, tiny_config("f", small_corpus, model__num_layers=2, model__dropout=0.2).model)
    two_layers_no_dropout = LanguageModel(50, tiny_config("f", small_corpus, model__num_layers=2, model__dropout=0.0).model)
    assert (
        recurrent_form(cuda, one_layer, 8) == "block-diagonal"
        and recurrent_form(cuda, two_layers_no_dropout, 8) == "block-diagonal"
    )
    assert recurrent_form(cuda, two_layers, 8) == "per-member"
    assert recurrent_form(cpu, one_layer, 8) == "per-member"
    assert recurrent_form(cuda, one_layer, WIDE_HIDDEN_LIMIT // 16) == "block-diagonal"  # hidden size 16
    assert recurrent_form(cuda, one_layer, WIDE_HIDDEN_LIMIT // 16 + 1) == "per-member"  # its matrices grow as members²


def test_a_member_folder_is_a_solo_run_folder(small_corpus, tmp_path):
    objective, weights = OBJECTIVES["mse-kl"]
    config = sweep(small_corpus, objective, weights[:2], "folder")[1]
    list(StackedTrainer.new(sweep(small_corpus, objective, weights[:2], "folder"), tmp_path).events())
    solo_twin(config, tmp_path)
    stacked, solo = tmp_path / config.name, tmp_path / f"solo-{config.name}"
    assert sorted(path.name for path in stacked.iterdir()) == sorted(path.name for path in solo.iterdir())
    mine, theirs = (json.loads((folder / "run.json").read_text()) for folder in (stacked, solo))
    for key in SETTINGS_OF_RECORD:
        mine.pop(key), theirs.pop(key)
    metrics_mine, metrics_theirs = mine.pop("metrics"), theirs.pop("metrics")
    assert mine == theirs
    assert_close(metrics_mine, metrics_theirs)
    for file in (mine["weights_file"], mine["optimizer_file"]):
        tensors_mine, tensors_theirs = load_file(stacked / file), load_file(solo / file)
        assert {key: value.shape for key, value in tensors_mine.items()} == {
            key: value.shape for key, value in tensors_theirs.items()
        }
    lines = [[json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()] for folder in (stacked, solo)]
    assert [(line["kind"], line["step"], line["epoch"]) for line in lines[0]] == [
        (line["kind"], line["step"], line["epoch"]) for line in lines[1]
    ]
    for line_mine, line_theirs in zip(*lines, strict=True):
        assert_close(line_mine, line_theirs)


def test_generate_runs_and_resume_work_on_a_member(small_corpus, tmp_path, capsys):
    objective, weights = OBJECTIVES["mse-kl"]
    configs = sweep(small_corpus, objective, weights[:2], "cli", train__epochs=1)
    list(StackedTrainer.new(configs, tmp_path).events())

    assert main(["runs", "--checkpoints", str(tmp_path), "--json"]) == 0
    listed = {item["run"]: item for item in json.loads(capsys.readouterr().out)}
    assert set(listed) == {"cli-0", "cli-1"}
    assert listed["cli-1"]["problem"] is None and listed["cli-1"]["record"]["status"] == "finished"
    assert listed["cli-1"]["record"]["config"]["objective"]["weight"] == 0.1

    assert (
        main(["generate", "cli-0", "cli-1", "--text", "the government", "--words", "4", "--checkpoints", str(tmp_path), "--json"])
        == 0
    )
    generated = json.loads(capsys.readouterr().out)
    assert "cli-1" in json.dumps(generated) and "the government" in json.dumps(generated)

    assert main(["train", "--resume", "cli-1", "--epochs", "2", "--checkpoints", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished" and [epoch["epoch"] for epoch in result["epochs"]] == [2]
    assert load_run(tmp_path, "cli-1").record.epochs_completed == 2


def test_a_diverging_member_leaves_and_the_others_finish_as_their_twins(small_corpus, tmp_path, form):
    # 1e39 is finite but above float32's range: weight × entropy is inf from the first step
    objective = {"model__head": "linear", "objective__loss": "mse", "objective__regularizer": "entropy"}
    configs = sweep(small_corpus, objective, [1e-3, 1e39, 1.0], "fate")
    events = list(StackedTrainer.new(configs, tmp_path).events())
    doomed = of_member(events, "fate-1")
    assert [type(event) for event in doomed] == [RunStarted, RunDiverged]
    assert doomed[-1].step == 1 and "non-finite at step 1 (epoch 1)" in doomed[-1].message
    record = load_run(tmp_path, "fate-1").record
    assert record.status == "diverged" and record.epochs_completed == 0 and record.message == doomed[-1].message
    for config in (configs[0], configs[2]):
        assert_same_run(of_member(events, config.name), solo_twin(config, tmp_path))


def test_a_member_whose_adam_moments_overflow_under_a_finite_loss_diverges_alone(small_corpus, tmp_path, form):
    # weight 1e30 (as in test_trainer): the loss stays finite, its gradients square past float32 in Adam's second moment
    objective = {"model__head": "linear", "objective__loss": "mse", "objective__regularizer": "entropy", "train__log_every": 3}
    configs = sweep(small_corpus, objective, [1e-3, 1e30], "moments")
    events = list(StackedTrainer.new(configs, tmp_path).events())
    doomed = of_member(events, "moments-1")
    assert [type(event) for event in doomed] == [RunStarted, RunDiverged] and doomed[-1].step == 3
    assert_same_run(of_member(events, "moments-0"), solo_twin(configs[0], tmp_path))


def test_stopping_one_member_saves_it_and_the_rest_train_on(small_corpus, tmp_path):
    objective, weights = OBJECTIVES["ce-confidence"]
    configs = sweep(small_corpus, objective, weights, "stop")
    trainer = StackedTrainer.new(configs, tmp_path)
    events = []
    for event in trainer.events():
        events.append(event)
        if isinstance(event, StepMetrics) and event.run_name == "stop-0" and event.step == 2:
            trainer.stop("stop-0")
    stopped = of_member(events, "stop-0")
    assert [type(event) for event in stopped[-2:]] == [CheckpointSaved, RunStopped]
    assert (stopped[-1].step, stopped[-1].epoch) == (2, pytest.approx(0.4))
    record = load_run(tmp_path, "stop-0").record
    assert (record.status, record.step, record.batch_in_epoch, record.partial_epoch.count > 0) == ("stopped", 2, 2, True)
    assert_same_run(of_member(events, "stop-1"), solo_twin(configs[1], tmp_path))
    lines = (tmp_path / "stop-0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2]

    resumed = list(Trainer.resume(tmp_path, "stop-0").events())
    assert isinstance(resumed[0], RunStarted) and resumed[0].start_step == 2
    assert isinstance(resumed[-1], RunFinished)
    assert load_run(tmp_path, "stop-0").record.epochs_completed == EPOCHS


def test_stop_without_a_name_stops_every_member(small_corpus, tmp_path):
    objective, weights = OBJECTIVES["mse-kl"]
    trainer = StackedTrainer.new(sweep(small_corpus, objective, weights, "all"), tmp_path)
    events = []
    for event in trainer.events():
        events.append(event)
        if isinstance(event, StepMetrics) and event.step == 2:
            trainer.stop()
    assert [event.run_name for event in events if isinstance(event, RunStopped)] == ["all-0", "all-1", "all-2"]
    with pytest.raises(UserError, match="No run named 'other'"):
        trainer.stop("other")


def test_runs_that_differ_beyond_the_objective_do_not_stack(small_corpus, tmp_path):
    first, second = config_for("a", small_corpus), config_for("b", small_corpus, train__lr=0.01)
    with pytest.raises(UserError, match=r"differ in train\.lr"):
        StackedTrainer.new([first, second], tmp_path)
    with pytest.raises(UserError, match="appears twice"):
        StackedTrainer.new([first, first], tmp_path)
    list(Trainer.new(first, tmp_path).events())
    with pytest.raises(UserError, match="already exists"):
        StackedTrainer.new([first, config_for("c", small_corpus)], tmp_path)


def test_stack_groups_split_by_settings_and_memory(small_corpus):
    objective, _ = OBJECTIVES["mse-kl"]
    sweep_a = sweep(small_corpus, objective, [0.0, 1e-3, 1e-2, 0.1, 1.0], "a")
    other_lr = [config_for("b-0", small_corpus, train__lr=0.01)]
    configs = [*sweep_a[:2], *other_lr, *sweep_a[2:]]
    assert stack_key(sweep_a[0]) == stack_key(sweep_a[4]) != stack_key(other_lr[0])
    assert [[c.name for c in group] for group in stack_groups(configs)] == [["a-0", "a-1", "a-2", "a-3", "a-4"], ["b-0"]]

    corpus = load_corpus(sweep_a[0].corpus)
    one = activation_bytes(sweep_a[0], corpus)
    vocab = len(corpus.vocab)
    assert one > 16 * vocab * 9  # the output layer's weights and Adam state, at least
    doubled = activation_bytes(
        sweep_a[0].model_copy(update={"train": sweep_a[0].train.model_copy(update={"batch_size": 32})}), corpus
    )
    assert doubled > one
    groups = stack_groups(configs, memory_budget=int(2.5 * one), corpus=corpus)
    assert [[c.name for c in group] for group in groups] == [["a-0", "a-1"], ["a-2", "a-3"], ["a-4"], ["b-0"]]
    assert [len(group) for group in stack_groups(configs, memory_budget=one // 2, corpus=corpus)] == [1, 1, 1, 1, 1, 1]
    assert [len(group) for group in stack_groups(sweep_a, memory_budget=4 * one, corpus=corpus)] == [3, 2]


def test_a_member_checkpoint_holds_its_own_weights(small_corpus, tmp_path):
    """Members share initial weights but their saved tensors are their own after training."""
    objective, weights = OBJECTIVES["mse-kl"]
    list(StackedTrainer.new(sweep(small_corpus, objective, weights, "own", train__epochs=1), tmp_path).events())
    states = [RunDirectory(tmp_path, f"own-{i}") for i in range(3)]
    tensors = [load_file(directory.path / directory.read_record().weights_file)["output.weight"] for directory in states]
    assert not torch.equal(tensors[0], tensors[2])


def test_large_allocations_are_kept_for_reuse_under_glibc():
    assert reuse_large_allocations() == (platform.libc_ver()[0] == "glibc")
    assert default_memory_budget("cpu") > 0


def test_a_refused_device_fails_every_member_and_writes_nothing(small_corpus, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks a refused CUDA device")
    objective, weights = OBJECTIVES["mse-kl"]
    events = list(StackedTrainer.new(sweep(small_corpus, objective, weights, "gpu", train__device="cuda"), tmp_path).events())
    assert [(type(event), event.run_name, event.user_error) for event in events] == [
        (RunFailed, f"gpu-{i}", True) for i in range(3)
    ]
    assert not any(RunDirectory(tmp_path, f"gpu-{i}").exists() for i in range(3))


def test_each_member_holds_its_writer_lock_until_its_own_end(small_corpus, tmp_path):
    from engine.runs import protocol

    objective, weights = OBJECTIVES["ce-confidence"]
    configs = sweep(small_corpus, objective, weights, "held")
    trainer = StackedTrainer.new(configs, tmp_path)
    seen = {}
    for event in trainer.events():
        if isinstance(event, StepMetrics) and event.step == 2 and event.run_name == "held-0":
            seen["training"] = [protocol.lock_held(tmp_path / config.name) for config in configs]
            with pytest.raises(UserError, match=r"Run 'held-0' is being trained by process \d+"):
                Trainer.resume(tmp_path, "held-0")
            trainer.stop("held-0")
        if isinstance(event, RunStopped) and event.run_name == "held-0":
            seen["after-stop"] = [protocol.lock_held(tmp_path / config.name) for config in configs]
    assert seen["training"] == [True] * len(configs)
    assert seen["after-stop"] == [False] + [True] * (len(configs) - 1)  # the stopped member is free at once; the rest train on
    assert not any(protocol.lock_held(tmp_path / config.name) for config in configs)
