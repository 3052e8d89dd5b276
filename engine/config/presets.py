"""Presets: named sets of settings (``paper``, the study's exact setup; ``transformer``, a model where objectives can
differ), and a run's config built from defaults, preset and overrides."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from engine.config.models import RunConfig
from engine.config.settings import describe_validation_error
from engine.errors import UserError

PRESETS: dict[str, dict[str, Any]] = {
    # The study: Bansal's Keras LSTM with a linear output trained on MSE, Keras 2 defaults.
    "paper": {
        "corpus.split": "pair",
        "corpus.val_fraction": 0.2,
        "model.embedding_dim": 10,
        "model.hidden_size": 100,
        "model.num_layers": 1,
        "model.dropout": 0.1,
        "model.head": "linear",
        "model.init": "keras",
        "objective.loss": "mse",
        "train.batch_size": 32,
        "train.epochs": 5,
        "train.lr": 1e-3,
        "train.adam_eps": 1e-7,
        "train.batching": "prefix",
    },
    # Where objectives can differ (docs/findings.md): a small decoder-only transformer, softmax head, cross-entropy
    # base, whole documents held out. Epochs, batch and learning rate chosen by measurement on the embedded corpus
    # (V = 7586): see docs/findings.md, "A transformer where objectives can differ".
    "transformer": {
        "model.arch": "transformer",
        "model.embedding_dim": 64,
        "model.hidden_size": 256,
        "model.num_layers": 2,
        "model.heads": 4,
        "model.dropout": 0.1,
        "model.output_embedding": "tied",
        "model.head": "softmax",
        "objective.loss": "ce",
        "train.batch_size": 32,
        "train.epochs": 10,
        "train.lr": 2e-3,
        "train.batching": "document",
    },
}


def preset_values(preset: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The preset's settings for a run with these overrides.

    ``paper`` keeps the study's linear head only for the study's loss, ``mse``: with any other base
    loss (all defined on ``p = softmax(z)``) it is Bansal's original model, a softmax head, so
    entropy and KL are measured on probabilities, as the study's Keras pipeline does with ``--loss ce``.
    """
    values = dict(PRESETS.get(preset or "", {}))
    if preset == "paper" and overrides.get("objective.loss", values["objective.loss"]) != "mse":
        values["model.head"] = "softmax"
    return values


def build_run_config(name: str, preset: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the preset, then ``overrides`` (dotted keys such as ``objective.weight``).

    Raises :class:`UserError` with one sentence when the result is not a valid run.
    """
    if preset is not None and preset not in PRESETS:
        raise UserError(f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
    values: dict[str, Any] = {}
    for key, value in {**preset_values(preset, overrides or {}), **(overrides or {})}.items():
        section, _, field = key.partition(".")
        values.setdefault(section, {})[field] = value
    try:
        return RunConfig(name=name, preset=preset, **values)
    except ValidationError as error:
        raise UserError(describe_validation_error(error)) from None
