"""Run configuration: defaults, the paper preset, overrides, and every rule a bad value breaks."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from engine.config.models import ObjectiveConfig, RunConfig, parse_weight, parse_weights
from engine.config.presets import PRESETS, build_run_config
from engine.errors import UserError
from engine.objective.terms import BASE_LOSSES, REGULARIZERS

# The study, as the issue lists it.
PAPER = {
    ("model", "embedding_dim"): 10,
    ("model", "hidden_size"): 100,
    ("model", "num_layers"): 1,
    ("model", "dropout"): 0.1,
    ("model", "head"): "linear",
    ("model", "init"): "keras",
    ("objective", "loss"): "mse",
    ("objective", "regularizer"): "none",
    ("train", "batch_size"): 32,
    ("train", "epochs"): 5,
    ("train", "lr"): 1e-3,
    ("train", "adam_eps"): 1e-7,
    ("train", "batching"): "prefix",
    ("corpus", "split"): "pair",
    ("corpus", "val_fraction"): 0.2,
}


def field(config: RunConfig, section: str, name: str):
    return getattr(getattr(config, section), name)


def test_paper_preset_has_the_studys_values():
    config = build_run_config("paper-run", "paper")
    assert config.preset == "paper"
    for (section, name), expected in PAPER.items():
        assert field(config, section, name) == expected, f"{section}.{name}"


def test_an_option_beside_the_preset_overrides_only_that_part():
    config = build_run_config(
        "paper-kl", "paper", {"objective.regularizer": "kl", "objective.weight": 10.0, "train.epochs": 2, "model.hidden_size": 50}
    )
    assert (config.objective.regularizer, config.objective.weight, config.train.epochs, config.model.hidden_size) == (
        "kl",
        10.0,
        2,
        50,
    )
    overridden = {("objective", "regularizer"), ("train", "epochs"), ("model", "hidden_size")}
    for (section, name), expected in PAPER.items():
        if (section, name) not in overridden:
            assert field(config, section, name) == expected, f"{section}.{name}"


def test_defaults_without_a_preset():
    config = build_run_config("plain")
    assert config.preset is None
    assert (config.model.head, config.model.init, config.objective.loss, config.objective.weight) == (
        "softmax",
        "pytorch",
        "ce",
        0.0,
    )
    assert (config.train.batching, config.corpus.split, config.corpus.paths) == ("document", "document", [])
    assert config.train.adam_eps == 1e-8 and config.train.device == "auto"


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(UserError, match=r"Unknown preset 'keras'.*paper"):
        build_run_config("x", "keras")


def test_the_config_round_trips_through_json():
    config = build_run_config("rt", "paper", {"objective.regularizer": "kl", "objective.weight": 1e-7, "corpus.paths": ["a.csv"]})
    assert RunConfig.model_validate_json(config.model_dump_json()) == config


# -- weights ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "weight"), [("0", 0.0), ("1e-7", 1e-7), ("10", 10.0), ("100", 100.0), ("2.5E+1", 25.0), (" 1 ", 1.0)]
)
def test_weights_in_plain_or_scientific_notation(text, weight):
    assert parse_weight(text) == weight


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-1", "not allowed"),
        ("nan", "not allowed"),
        ("inf", "not allowed"),
        ("-inf", "not allowed"),
        ("abc", "not a number"),
        ("", "not a number"),
    ],
)
def test_bad_weights_are_refused_with_a_message_naming_the_weight(text, problem):
    with pytest.raises(UserError) as caught:
        parse_weight(text)
    message = str(caught.value)
    assert message.startswith(f"Weight {text!r} is {problem}")
    assert "≥ 0" in message and "\n" not in message


def test_weight_lists_for_a_sweep():
    assert parse_weights("1e-7, 1,10,100") == [1e-7, 1.0, 10.0, 100.0]
    assert parse_weights("0,,5,") == [0.0, 5.0]
    with pytest.raises(UserError, match="weight list is empty"):
        parse_weights(" , ")
    with pytest.raises(UserError, match=r"Weight '-3'"):
        parse_weights("1,-3,10")


@pytest.mark.parametrize("weight", [-1.0, math.nan, math.inf])
def test_the_config_itself_refuses_bad_weights(weight):
    with pytest.raises(ValidationError):
        ObjectiveConfig(weight=weight)
    with pytest.raises(UserError, match=r"^Setting objective\.weight \(--weight\) must be a finite number ≥ 0, not "):
        build_run_config("x", None, {"objective.weight": weight})


# -- loss parameters and regularizer rules ---------------------------------------------------


@pytest.mark.parametrize("loss", ["alpha", "beta", "gamma"])
def test_power_divergences_need_a_parameter(loss):
    with pytest.raises(UserError, match=f"loss '{loss}' needs a parameter: give --loss-param"):
        build_run_config("x", None, {"objective.loss": loss})
    assert build_run_config("x", None, {"objective.loss": loss, "objective.loss_param": 1.5}).objective.loss_param == 1.5


@pytest.mark.parametrize("param", [0.0, -2.0, math.inf, math.nan])
def test_the_parameter_must_be_finite_and_positive(param):
    with pytest.raises(UserError, match=r"Setting objective\.loss_param \(--loss-param\) must be a finite number > 0, not "):
        build_run_config("x", None, {"objective.loss": "beta", "objective.loss_param": param})


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_losses_without_a_parameter_refuse_one(loss):
    with pytest.raises(UserError, match=f"loss '{loss}' takes no parameter; drop --loss-param"):
        build_run_config("x", None, {"objective.loss": loss, "objective.loss_param": 2.0})


def test_label_smoothing_takes_its_epsilon_below_one():
    objective = build_run_config("x", None, {"objective.regularizer": "label-smoothing", "objective.epsilon": 0.1}).objective
    assert (objective.epsilon, objective.weight, objective.strength) == (0.1, 0.0, 0.1)
    with pytest.raises(UserError, match=r"objective.epsilon \(--epsilon\) must be a finite number ≥ 0 and < 1, not 1.0"):
        build_run_config("x", None, {"objective.regularizer": "label-smoothing", "objective.epsilon": 1.0})


def test_a_weight_given_to_label_smoothing_is_its_epsilon():
    # --weight and a sweep's --weights give it, and run.json files from before ε had its own field hold it there
    objective = build_run_config("x", None, {"objective.regularizer": "label-smoothing", "objective.weight": 0.1}).objective
    assert (objective.epsilon, objective.weight, objective.strength) == (0.1, 0.0, 0.1)
    old = ObjectiveConfig.model_validate_json(
        '{"loss": "ce", "loss_param": null, "regularizer": "label-smoothing", "weight": 0.05}'
    )
    assert (old.epsilon, old.weight) == (0.05, 0.0)
    assert ObjectiveConfig.model_validate_json(old.model_dump_json()) == old
    with pytest.raises(
        UserError, match=r"label smoothing's ε \(--weight or --epsilon\) must be a number ≥ 0 and < 1, such as 0.1, not 1"
    ):
        build_run_config("x", None, {"objective.regularizer": "label-smoothing", "objective.weight": 1.0})
    with pytest.raises(UserError, match="label smoothing takes one ε: give --epsilon or --weight, not both"):
        build_run_config(
            "x", None, {"objective.regularizer": "label-smoothing", "objective.weight": 0.1, "objective.epsilon": 0.2}
        )


@pytest.mark.parametrize("regularizer", ["none", "kl"])
def test_epsilon_belongs_to_label_smoothing_alone(regularizer):
    with pytest.raises(UserError, match=f"ε \\(--epsilon\\) is label smoothing's; with regularizer '{regularizer}' drop it"):
        build_run_config("x", None, {"objective.regularizer": regularizer, "objective.epsilon": 0.1})
    assert build_run_config("x", None, {"objective.regularizer": "kl", "objective.weight": 10.0}).objective.strength == 10.0


def test_unknown_loss_and_regularizer_list_the_valid_ones():
    with pytest.raises(UserError) as caught:
        build_run_config("x", None, {"objective.loss": "hinge"})
    assert "objective.loss" in str(caught.value) and f"one of {', '.join(BASE_LOSSES)}, not 'hinge'" in str(caught.value)
    with pytest.raises(UserError) as caught:
        build_run_config("x", None, {"objective.regularizer": "dropout"})
    assert "objective.regularizer" in str(caught.value) and f"one of {', '.join(REGULARIZERS)}, not 'dropout'" in str(
        caught.value
    )


# -- training settings --------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value"), [("train.epochs", 0), ("train.epochs", -3), ("train.batch_size", 0)])
def test_epochs_and_batch_size_must_be_at_least_one(key, value):
    with pytest.raises(UserError, match=rf"^Setting {key} \(--[a-z-]+\) must be a whole number from 1 to \d+, not {value}\.$"):
        build_run_config("x", None, {key: value})


def test_pair_split_needs_prefix_batching():
    with pytest.raises(UserError, match=r"pair-level split needs prefix batching \(--batching prefix\)"):
        build_run_config("x", None, {"corpus.split": "pair"})
    assert build_run_config("x", None, {"corpus.split": "pair", "train.batching": "prefix"}).corpus.split == "pair"
    # the paper preset's split is the pair split: document batching beside it needs the split changed too
    with pytest.raises(UserError, match="pair-level split"):
        build_run_config("x", "paper", {"train.batching": "document"})
    assert build_run_config("x", "paper", {"train.batching": "document", "corpus.split": "document"}).train.batching == "document"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_device_names_accepted(device):
    assert build_run_config("x", None, {"train.device": device}).train.device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "mps0", "CPU"])
def test_device_names_refused(device):
    with pytest.raises(UserError, match=r"train.device \(--device\) must be auto, cpu, cuda or cuda:N, not "):
        build_run_config("x", None, {"train.device": device})


@pytest.mark.parametrize("lr", [0.0, -1e-3, math.inf, math.nan])
def test_learning_rate_must_be_finite_and_positive(lr):
    with pytest.raises(UserError, match=r"train.lr"):
        build_run_config("x", None, {"train.lr": lr})


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "-dash", "with space", "x" * 81])
def test_run_names_that_are_not_safe_folder_names_are_refused(name):
    with pytest.raises(UserError, match="Setting name: must be 1–80 letters"):
        build_run_config(name)


def test_unknown_settings_are_refused():
    with pytest.raises(UserError, match=r"model\.bogus"):
        build_run_config("x", None, {"model.bogus": 1})


def test_corpus_limits():
    with pytest.raises(UserError, match=r"corpus.max_vocab"):
        build_run_config("x", None, {"corpus.max_vocab": 2})
    with pytest.raises(UserError, match=r"corpus.val_fraction"):
        build_run_config("x", None, {"corpus.val_fraction": 1.0})
    with pytest.raises(UserError, match=r"corpus.min_count"):
        build_run_config("x", None, {"corpus.min_count": 0})


def test_presets_only_name_real_settings():
    for preset, values in PRESETS.items():
        config = build_run_config("x", preset)
        for key, expected in values.items():
            section, _, name = key.partition(".")
            assert field(config, section, name) == expected


def test_the_paper_preset_with_cross_entropy_is_bansals_softmax_model():
    # the study's linear head belongs to its MSE; with cross-entropy the preset is Bansal's original model
    assert build_run_config("control", "paper").model.head == "linear"
    assert build_run_config("kl", "paper", {"objective.regularizer": "kl", "objective.weight": 10.0}).model.head == "linear"
    bansal = build_run_config("ce", "paper", {"objective.loss": "ce"})
    assert (bansal.model.head, bansal.model.embedding_dim, bansal.model.hidden_size, bansal.train.batching) == (
        "softmax",
        10,
        100,
        "prefix",
    )
    assert build_run_config("beta", "paper", {"objective.loss": "beta", "objective.loss_param": 2.0}).model.head == "softmax"
    assert build_run_config("ce-linear", "paper", {"objective.loss": "ce", "model.head": "linear"}).model.head == "linear"
