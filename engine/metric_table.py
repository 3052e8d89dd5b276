"""The one table of metrics: every number lm-explorer writes to ``metrics.jsonl`` and shows, with its name and rendering.

Torch-free, on the lowest floor but two, so that the objective (which computes them), the trainer
(which writes them), the CLI, the study report and the app (which show them) all read it.

A metric is a *quantity* (what :meth:`engine.objective.metrics.MetricTotals.summary` computes, its
formula there) measured on a *source*:

- ``training``: the training batches. On a ``step`` line, the rolling window of batches since the
  previous step line; on an ``epoch`` line, every batch of that epoch. Keys ``train_<quantity>``.
- ``validation``: the whole validation split at each epoch's end, on ``epoch`` lines only. Keys
  ``<quantity>`` (``entropy``, ``kl``, …), but ``val_loss`` for the loss.

A value renders as four significant digits (:func:`number`, a count as it is); a validation ``distinct_predictions`` at or under :data:`COLLAPSE_THRESHOLD` is flagged as a collapse
(:func:`distinct_label`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Quantity = Literal["loss", "entropy", "kl", "accuracy", "perplexity", "distinct_predictions"]
Source = Literal["training", "validation"]
QUANTITIES: tuple[Quantity, ...] = get_args(Quantity)

COLLAPSE_THRESHOLD = 5


def is_collapsed(distinct_predictions: int) -> bool:
    """A model whose argmax names only a handful of words, whatever the input, has collapsed."""
    return distinct_predictions <= COLLAPSE_THRESHOLD


def number(value: float | int | None) -> str:
    """Four significant digits, scientific where that is shorter; ``–`` for missing."""
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def plus_minus(mean: float, sd: float) -> str:
    """``mean ± sd`` in :func:`number`'s digits; the mean alone where there is no sd (one value)."""
    return number(mean) if not math.isfinite(sd) else f"{number(mean)} ± {number(sd)}"


def distinct_label(distinct: int | float | None) -> str:
    """The distinct-predictions count, marked when the model has collapsed onto a handful of words."""
    if distinct is None:
        return "–"
    if not math.isfinite(distinct):
        return str(distinct)
    return f"{int(distinct)} COLLAPSED" if is_collapsed(int(distinct)) else str(int(distinct))


@dataclass(frozen=True)
class Metric:
    """One metric: its ``metrics.jsonl`` key, what it measures on which batches, and how it is shown.

    ``header``: its column in the plain-text and Markdown tables; ``label``: its name in the app.
    ``collapse``: whether a value is flagged as a collapse (:func:`distinct_label`).
    """

    key: str
    quantity: Quantity
    source: Source
    header: str
    label: str
    collapse: bool = False

    def render(self, value: float | int | None) -> str:
        """The value as the tables show it; ``–`` when missing."""
        return distinct_label(value) if self.collapse else number(value)


def _key(quantity: Quantity, source: Source) -> str:
    if source == "training":
        return f"train_{quantity}"
    return "val_loss" if quantity == "loss" else quantity


def _metric(quantity: Quantity, source: Source, label: str, header: str | None = None) -> Metric:
    key = _key(quantity, source)
    collapse = quantity == "distinct_predictions" and source == "validation"
    return Metric(key, quantity, source, header or key, label, collapse)


METRICS: tuple[Metric, ...] = (
    _metric("loss", "training", "train loss"),
    _metric("loss", "validation", "val loss"),
    _metric("entropy", "validation", "entropy"),
    _metric("kl", "validation", "KL"),
    _metric("accuracy", "validation", "accuracy"),
    _metric("perplexity", "validation", "perplexity"),
    _metric("distinct_predictions", "validation", "distinct", header="distinct"),
    _metric("entropy", "training", "train entropy"),
    _metric("kl", "training", "train KL"),
    _metric("accuracy", "training", "train accuracy"),
    _metric("perplexity", "training", "train perplexity"),
    _metric("distinct_predictions", "training", "train distinct"),
)
"""Every metric, in the order tables list them."""

BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}
EPOCH_SUMMARY: tuple[Metric, ...] = tuple(m for m in METRICS if m.source == "validation" or m.quantity == "loss")
"""The columns of a run's per-epoch table: the epoch's training loss, then every validation metric."""
COLLAPSE_SIGN: Metric = next(m for m in METRICS if m.collapse)
"""The metric whose value flags a collapsed model: distinct argmax words over the validation split."""


def metrics(*keys: str) -> tuple[Metric, ...]:
    """The metrics written under ``keys``, in that order; KeyError names a key no metric has."""
    return tuple(BY_KEY[key] for key in keys)


def measured(quantity: Quantity, source: Source) -> Metric:
    """The metric of ``quantity`` on ``source``."""
    return BY_KEY[_key(quantity, source)]


def collapsed(values: Mapping[str, float | int | None]) -> bool:
    """Whether a metrics line (or a run's latest ``metrics``) holds a validation ``distinct_predictions`` that flags a collapse."""
    distinct = values.get(COLLAPSE_SIGN.key)
    return distinct is not None and math.isfinite(distinct) and is_collapsed(int(distinct))


def line_fields(summary: Mapping[Quantity, float], source: Source) -> dict[str, float]:
    """A :meth:`~engine.objective.metrics.MetricTotals.summary` under its keys for ``source``, as a metrics line holds it."""
    return {measured(quantity, source).key: value for quantity, value in summary.items()}


def cells(values: Mapping[str, float | int | None], shown: tuple[Metric, ...]) -> list[str]:
    """The ``shown`` metrics of a metrics line (or a run's latest ``metrics``) rendered; ``–`` where one is missing."""
    return [metric.render(values.get(metric.key)) for metric in shown]
