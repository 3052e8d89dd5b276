"""Run configuration as validated plain data, and the presets.

A run is fully described by a :class:`RunConfig`; it is stored in the checkpoint's ``run.json``
so a run can be rebuilt, resumed and compared from disk alone.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import UserError

LOSSES = ("mse", "ce", "alpha", "beta", "gamma")
PARAMETRIC_LOSSES = ("alpha", "beta", "gamma")
REGULARIZERS = ("none", "entropy", "kl", "confidence", "label-smoothing")
BATCHINGS = ("document", "prefix")

RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CorpusConfig(_Strict):
    """Where the text comes from and how it is cut into a vocabulary and a split.

    ``paths`` empty means the embedded default corpus. ``split`` is ``document`` (no document in
    both train and validation) or ``pair`` (the study's: (prefix, next word) pairs shuffled and
    cut, which only makes sense with ``prefix`` batching).
    """

    paths: list[str] = Field(default_factory=list)
    column: str | None = None
    max_vocab: int | None = Field(default=None, ge=3)
    min_count: int = Field(default=1, ge=1)
    val_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    split: Literal["document", "pair"] = "document"


class ModelConfig(_Strict):
    """Embedding → LSTM → Dropout → Linear over the vocabulary.

    ``head`` says what the model's prediction is: ``linear`` uses the raw outputs as they are
    (the study's Dense layer without activation), ``softmax`` normalizes them. ``init`` is
    ``keras`` (Keras 2 defaults, as the study had) or ``pytorch`` (PyTorch's defaults).
    """

    embedding_dim: int = Field(default=64, ge=1)
    hidden_size: int = Field(default=128, ge=1)
    num_layers: int = Field(default=1, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    head: Literal["linear", "softmax"] = "softmax"
    init: Literal["keras", "pytorch"] = "pytorch"


class ObjectiveConfig(_Strict):
    """Total loss = base loss + weight × regularizer (see :mod:`engine.objectives`)."""

    loss: Literal["mse", "ce", "alpha", "beta", "gamma"] = "ce"
    loss_param: float | None = None
    regularizer: Literal["none", "entropy", "kl", "confidence", "label-smoothing"] = "none"
    weight: float = 0.0

    @field_validator("weight")
    @classmethod
    def _finite_non_negative(cls, weight: float) -> float:
        if not math.isfinite(weight) or weight < 0:
            raise ValueError("must be a finite number ≥ 0, such as 0, 1e-7, 10 or 100")
        return weight

    @model_validator(mode="after")
    def _param_fits_loss(self) -> ObjectiveConfig:
        if self.loss in PARAMETRIC_LOSSES:
            if self.loss_param is None:
                raise ValueError(
                    f"loss {self.loss!r} needs a parameter: give --loss-param "
                    "(1 is cross-entropy; beta 2 is half the squared error)"
                )
            if not math.isfinite(self.loss_param) or self.loss_param <= 0:
                raise ValueError(f"the {self.loss} parameter must be a finite number > 0")
        elif self.loss_param is not None:
            raise ValueError(f"loss {self.loss!r} takes no parameter; drop --loss-param")
        if self.regularizer == "label-smoothing" and self.weight >= 1:
            raise ValueError("label-smoothing takes its weight as ε, which must be below 1")
        return self


class TrainConfig(_Strict):
    """The optimization loop: Adam, epochs, batches, device and seed.

    ``batch_size`` counts sequences: documents with ``document`` batching, (prefix, next word)
    pairs with ``prefix`` batching. ``log_every`` is how many batches a live-metrics window spans.
    ``compile``: fuse the output head's element-wise math with ``torch.compile`` (see
    :func:`engine.head.plan_fusion`; ``auto`` is on for CUDA, off on a CPU).
    """

    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=1e-3, gt=0.0)
    adam_eps: float = Field(default=1e-8, gt=0.0)
    seed: int = 0
    device: str = "auto"
    batching: Literal["document", "prefix"] = "document"
    log_every: int = Field(default=10, ge=1)
    compile: Literal["auto", "on", "off"] = "auto"

    @field_validator("lr")
    @classmethod
    def _finite_lr(cls, lr: float) -> float:
        if not math.isfinite(lr):
            raise ValueError("must be a finite number > 0")
        return lr

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return device


class RunConfig(_Strict):
    """Everything that defines one run."""

    name: str
    preset: str | None = None
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not RUN_NAME_PATTERN.fullmatch(name):
            raise ValueError("must be 1–80 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return name

    @model_validator(mode="after")
    def _split_fits_batching(self) -> RunConfig:
        if self.corpus.split == "pair" and self.train.batching != "prefix":
            raise ValueError("the pair-level split needs prefix batching (--batching prefix)")
        return self


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
}


def build_run_config(name: str, preset: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the preset, then ``overrides`` (dotted keys such as ``objective.weight``).

    Raises :class:`UserError` with one sentence when the result is not a valid run.
    """
    if preset is not None and preset not in PRESETS:
        raise UserError(f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
    values: dict[str, Any] = {}
    for key, value in {**PRESETS.get(preset or "", {}), **(overrides or {})}.items():
        section, _, field = key.partition(".")
        values.setdefault(section, {})[field] = value
    try:
        return RunConfig(name=name, preset=preset, **values)
    except ValidationError as error:
        raise UserError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    """The first problem of a pydantic error as one sentence naming the setting."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "configuration"
    message = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
    return f"Setting {where}: {message}{shown}."


def parse_weight(text: str) -> float:
    """A regularizer weight from text: any finite number ≥ 0, plain or scientific (1e-7)."""
    try:
        weight = float(text)
    except ValueError:
        raise UserError(f"Weight {text!r} is not a number; give a finite value ≥ 0 such as 0, 1e-7, 10 or 100.") from None
    if not math.isfinite(weight) or weight < 0:
        raise UserError(f"Weight {text!r} is not allowed; give a finite value ≥ 0 such as 0, 1e-7, 10 or 100.")
    return weight


def parse_weights(text: str) -> list[float]:
    """A comma-separated weight list for a sweep, e.g. ``1e-7, 1, 10, 100``."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise UserError("The weight list is empty; give comma-separated weights such as 1e-7,1,10,100.")
    return [parse_weight(part) for part in parts]
