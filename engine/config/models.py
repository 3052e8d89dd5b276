"""Run configuration as validated plain data, and the presets.

A run is fully described by a :class:`RunConfig`; it is stored in the checkpoint's ``run.json``
so a run can be rebuilt, resumed and compared from disk alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.errors import UserError
from engine.objective.terms import BASE_LOSSES, REGULARIZERS

PARAMETRIC_LOSSES = tuple(name for name, loss in BASE_LOSSES.items() if loss.takes_param)
SMOOTHING = tuple(name for name, regularizer in REGULARIZERS.items() if regularizer.smooths_targets)

RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
RUN_NAME_RULE = "1–80 letters, digits, '.', '_' or '-', starting with a letter or digit"
"""What :data:`RUN_NAME_PATTERN` allows, in the words every message about a run name uses."""
MAX_VOCAB = 2_000_000
MAX_SEED = 2**63 - 1
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d{1,3})?")


class OneOf:
    """A name field's check: the value must be a key of ``registry`` (:mod:`engine.objective.terms`), so the registry alone lists the choices."""

    def __init__(self, registry: Mapping[str, object]):
        self.registry = registry

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self.registry)

    def __call__(self, name: str) -> str:
        if name not in self.choices:
            raise PydanticCustomError("one_of", "must be one of {choices}", {"choices": ", ".join(self.choices)})
        return name


LossName = Annotated[str, AfterValidator(OneOf(BASE_LOSSES))]
RegularizerName = Annotated[str, AfterValidator(OneOf(REGULARIZERS))]


def option(
    default: Any = ...,
    help: str = "",
    *,
    flag: str | None = None,
    metavar: str | None = None,
    resumable: bool = False,
    wanted: str | None = None,
    **constraints: Any,
) -> Any:
    """A setting's pydantic field with what its command-line option and form field need (:mod:`engine.config.settings`).

    ``flag`` defaults to ``--`` + the field name with dashes; ``resumable`` settings may change
    when a run is resumed; ``wanted`` says in words what a text setting accepts.
    """
    given = {"flag": flag, "metavar": metavar, "resumable": resumable, "wanted": wanted}
    extra: dict[str, Any] = {key: value for key, value in given.items() if value}
    if callable(default):
        return Field(default_factory=default, description=help, json_schema_extra=extra, **constraints)
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CorpusConfig(_Strict):
    """Where the text comes from and how it is cut into a vocabulary and a split.

    ``paths`` empty means the embedded default corpus. ``split`` is ``document`` (no document in
    both train and validation) or ``pair`` (the study's: (prefix, next word) pairs shuffled and
    cut, which only makes sense with ``prefix`` batching).
    """

    paths: list[Annotated[str, Field(pattern=r"\S")]] = option(
        list,
        "a .txt, .csv or folder of them; repeat to add more (default: the embedded Lee news corpus)",
        flag="--corpus",
        metavar="PATH",
        resumable=True,
        wanted="file or folder paths",
    )
    column: str | None = option(
        None,
        "the CSV column holding the text (default: headline, else the only text column)",
        metavar="NAME",
        wanted="a column name",
    )
    max_vocab: int | None = option(None, "keep the N-2 most frequent words; the rest become `<unk>`", ge=3, le=MAX_VOCAB)
    min_count: int = option(1, "words seen fewer than K times become `<unk>`", metavar="K", ge=1, le=1_000_000_000)
    val_fraction: float = option(0.2, "share held out for validation", metavar="F", gt=0.0, lt=1.0)
    split: Literal["document", "pair"] = option(
        "document", "hold out whole documents or the study's shuffled pairs (needs prefix batching)"
    )


class ModelConfig(_Strict):
    """Embedding → a network over the sequence (``arch``) → Linear over the vocabulary.

    ``arch``: the study's ``lstm``, a ``gru``, or a small decoder-only ``transformer``
    (:mod:`engine.lm.transformer`): its residual width is ``embedding_dim``, its feed-forward
    width ``hidden_size``, ``num_layers`` blocks of ``heads`` heads, positions learned up to
    ``context``. ``output_embedding`` ``tied`` makes the output layer reuse the word vectors
    (Press & Wolf 2017), which needs the output's input to be ``embedding_dim`` wide.
    ``head`` says what the model's prediction is: ``linear`` uses the raw outputs as they are
    (the study's Dense layer without activation), ``softmax`` normalizes them. ``init`` is
    ``keras`` (Keras 2 defaults, as the study had) or ``pytorch`` (PyTorch's defaults) for the
    recurrent networks; the transformer starts as GPT-2 does.
    """

    arch: Literal["lstm", "gru", "transformer"] = option(
        "lstm", "the network over the sequence: lstm (the study's), gru, or a small decoder-only transformer"
    )
    embedding_dim: int = option(64, "word vector size (the transformer's width)", ge=1, le=4096)
    hidden_size: int = option(128, "recurrent units per layer (the transformer's feed-forward width)", ge=1, le=8192)
    num_layers: int = option(1, "stacked recurrent layers or transformer blocks", flag="--layers", ge=1, le=8)
    heads: int = option(4, "the transformer's attention heads; they must divide --embedding-dim", ge=1, le=64)
    context: int = option(
        128, "the transformer's longest input (learned positions); generation keeps the last this many words", ge=1, le=8192
    )
    dropout: float = option(
        0.1,
        "dropout before the output layer and between recurrent layers (transformer: on embeddings, attention and residuals)",
        metavar="P",
        ge=0.0,
        lt=1.0,
    )
    output_embedding: Literal["untied", "tied"] = option(
        "untied", "tied: the output layer reuses the word vectors (a recurrent net then needs --hidden-size = --embedding-dim)"
    )
    head: Literal["linear", "softmax"] = option(
        "softmax", "linear: raw outputs are the prediction (the study's); softmax: probabilities"
    )
    init: Literal["keras", "pytorch"] = option(
        "pytorch", "whose weight initialization the recurrent nets copy (keras: the study's); the transformer starts as GPT-2"
    )

    @model_validator(mode="after")
    def _sizes_fit_arch(self) -> ModelConfig:
        if self.arch == "transformer":
            if self.embedding_dim % self.heads:
                raise ValueError(
                    f"the transformer's {self.heads} heads must divide --embedding-dim {self.embedding_dim}; "
                    "change --heads or --embedding-dim"
                )
            if self.init == "keras":
                raise ValueError("--init keras is the study's LSTM's; the transformer starts as GPT-2, so drop --init")
        elif self.output_embedding == "tied" and self.hidden_size != self.embedding_dim:
            raise ValueError(
                f"a tied output embedding needs --hidden-size ({self.hidden_size}) equal to --embedding-dim "
                f"({self.embedding_dim}) in a recurrent network ({self.arch})"
            )
        return self

    @property
    def feature_size(self) -> int:
        """The width of what the output layer reads: ``embedding_dim`` for the transformer, else ``hidden_size``."""
        return self.embedding_dim if self.arch == "transformer" else self.hidden_size


class ObjectiveConfig(_Strict):
    """Total loss = base loss + weight × regularizer (see :mod:`engine.objective.total`); label smoothing
    instead smooths the targets by its ε: ``(1 − ε) one_hot + ε / V``.

    ``weight`` given for label smoothing is its ε: ``--weight``/``--weights`` (what a sweep varies)
    give it, and ``run.json`` files written before ε had its own field hold it there.
    """

    loss: LossName = option("ce", "base loss (the paper preset: mse)")
    loss_param: float | None = option(None, "alpha, beta or gamma's parameter (1 = cross-entropy)", gt=0.0, allow_inf_nan=False)
    regularizer: RegularizerName = option(
        "none", "added term, times the weight; label-smoothing smooths the targets by ε instead"
    )
    weight: float = option(
        0.0,
        "regularizer weight, such as 0, 1e-7, 10 or 100 (a sweep takes --weights; with label-smoothing it gives ε)",
        metavar="W",
        ge=0.0,
        allow_inf_nan=False,
    )
    epsilon: float = option(
        0.0, "label smoothing's ε: the targets become (1 − ε) one-hot + ε/V (Szegedy et al. use 0.1)", metavar="ε", ge=0.0, lt=1.0
    )

    @model_validator(mode="before")
    @classmethod
    def _epsilon_given_as_weight(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("regularizer") in SMOOTHING and data.get("weight"):
            if data.get("epsilon"):
                raise ValueError("label smoothing takes one ε: give --epsilon or --weight, not both")
            weight = data["weight"]
            if isinstance(weight, (int, float)) and not 0 <= weight < 1:
                raise ValueError(
                    f"label smoothing's ε (--weight or --epsilon) must be a number ≥ 0 and < 1, such as 0.1, not {weight:g}"
                )
            data = {**data, "epsilon": weight, "weight": 0.0}
        return data

    @model_validator(mode="after")
    def _param_fits_loss(self) -> ObjectiveConfig:
        if self.loss in PARAMETRIC_LOSSES:
            if self.loss_param is None:
                raise ValueError(
                    f"loss {self.loss!r} needs a parameter: give --loss-param "
                    "(1 is cross-entropy; beta 2 is half the squared error)"
                )
        elif self.loss_param is not None:
            raise ValueError(f"loss {self.loss!r} takes no parameter; drop --loss-param")
        if self.epsilon and self.regularizer not in SMOOTHING:
            raise ValueError(
                f"ε (--epsilon) is label smoothing's; with regularizer {self.regularizer!r} drop it, or give --weight"
            )
        return self

    @property
    def strength(self) -> float:
        """The regularizer's one number, which a sweep varies: label smoothing's ε, else the weight."""
        return self.epsilon if self.regularizer in SMOOTHING else self.weight


class TrainConfig(_Strict):
    """The optimization loop: Adam, epochs, batches, device and seed.

    ``batch_size`` counts sequences: documents with ``document`` batching, (prefix, next word)
    pairs with ``prefix`` batching. ``log_every`` is how many batches a live-metrics window spans.
    ``compile``: fuse the output head's element-wise math with ``torch.compile`` (see
    :func:`engine.objective.head.plan_fusion`; ``auto`` is on for CUDA, and on a CPU once the compile cache is warm).
    """

    epochs: int = option(5, "epochs to train (with --resume: train further)", resumable=True, ge=1, le=100_000)
    batch_size: int = option(
        32, "sequences per batch: documents, or (prefix, next word) pairs with prefix batching", metavar="B", ge=1, le=65_536
    )
    lr: float = option(1e-3, "Adam's learning rate", metavar="LR", gt=0.0, allow_inf_nan=False)
    adam_eps: float = option(1e-8, "Adam's ε (Keras: 1e-7)", metavar="EPS", gt=0.0, allow_inf_nan=False)
    seed: int = option(0, "seed of the initial weights, split, batch order and dropout", metavar="S", ge=0, le=MAX_SEED)
    device: str = option(
        "auto",
        "where to train",
        metavar="D",
        resumable=True,
        wanted="auto, cpu, cuda or cuda:N",
        pattern=f"^(?:{DEVICE_PATTERN.pattern})$",
    )
    batching: Literal["document", "prefix"] = option("document", "document (fast) or prefix (the study's n-grams)")
    log_every: int = option(10, "batches per live-metrics window", ge=1, le=1_000_000)
    compile: Literal["auto", "on", "off"] = option(
        "auto", "fuse the output head's math with torch.compile: auto (on CUDA; on a CPU with a warm cache), on, off"
    )


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
            raise ValueError(f"must be {RUN_NAME_RULE}")
        return name

    @model_validator(mode="after")
    def _split_fits_batching(self) -> RunConfig:
        if self.corpus.split == "pair" and self.train.batching != "prefix":
            raise ValueError("the pair-level split needs prefix batching (--batching prefix)")
        return self


_WEIGHT = TypeAdapter(Annotated[float, ObjectiveConfig.model_fields["weight"]])


def parse_weight(text: str) -> float:
    """A regularizer weight from text, by the ``objective.weight`` field's rule: finite, ≥ 0, plain or scientific (1e-7)."""
    try:
        weight = float(text)
    except ValueError:
        raise UserError(f"Weight {text!r} is not a number; give a finite value ≥ 0 such as 0, 1e-7, 10 or 100.") from None
    try:
        return _WEIGHT.validate_python(weight)
    except ValidationError:
        raise UserError(f"Weight {text!r} is not allowed; give a finite value ≥ 0 such as 0, 1e-7, 10 or 100.") from None


def parse_weights(text: str) -> list[float]:
    """A comma-separated weight list for a sweep, e.g. ``1e-7, 1, 10, 100``."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise UserError("The weight list is empty; give comma-separated weights such as 1e-7,1,10,100.")
    return [parse_weight(part) for part in parts]
