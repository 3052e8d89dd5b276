"""Every number lm-explorer plots or tabulates, each defined once here (named and rendered in :mod:`engine.metric_table`).

Notation, per prediction: ``z`` the raw outputs over a vocabulary of V words, ``p = softmax(z)``,
``t`` the target distribution (one-hot on the next word), ``y`` the head's prediction (``z`` for a
linear head, ``p`` for a softmax head) and ``clip(x) = min(max(x, ε), 1)`` with ε = 1e-7, as the
study (Keras's ``K.epsilon()``) had.

Two definitions of entropy and KL stand side by side, named:

- ``study``: on the clipped head output, exactly as the study computed them, so its figures can be
  redrawn. For a linear head ``clip(y)`` does not sum to 1, so this "entropy" is no entropy of a
  distribution: it is what the study plotted.
- ``softmax``: the standard definitions on ``p``.

For a linear head the study's are in force, for a softmax head the softmax ones
(:func:`definitions_for`); every record says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar, overload

import torch

from engine.metric_table import Quantity

EPSILON = 1e-7

DEFINITIONS = {
    "study": "study: clip(y, 1e-7, 1) of the raw outputs",
    "softmax": "softmax probabilities",
}


def clip(values: torch.Tensor) -> torch.Tensor:
    """``clip(x) = min(max(x, 1e-7), 1)``, with Keras's zero gradient outside the range."""
    return values.clamp(EPSILON, 1.0)


def study_entropy(prediction: torch.Tensor) -> torch.Tensor:
    """The study's entropy, per row: ``H = −Σ_j clip(y_j) · log clip(y_j)``."""
    clipped = clip(prediction)
    return -(clipped * clipped.log()).sum(-1)


def study_kl(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """The study's KL (Keras's ``kl_divergence``), per row: ``Σ_j clip(t_j) · log(clip(t_j) / clip(y_j))``."""
    clipped_target = clip(target)
    return (clipped_target * (clipped_target.log() - clip(prediction).log())).sum(-1)


def softmax_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of ``p``, per row: ``H(p) = −Σ_j p_j log p_j``."""
    return -(log_probs.exp() * log_probs).sum(-1)


def softmax_kl(target: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """``KL(t ‖ p) = Σ_j t_j (log t_j − log p_j)``, with ``0 · log 0 = 0``; equals cross-entropy for one-hot ``t``."""
    return torch.xlogy(target, target).sum(-1) - (target * log_probs).sum(-1)


def cross_entropy(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``CE = −Σ_j t_j log p_j`` per row."""
    return -(target * log_probs).sum(-1)


_Owner = TypeVar("_Owner")
_Value = TypeVar("_Value")


class cached(Generic[_Owner, _Value]):
    """``functools.cached_property`` without the lock Python 3.11's takes, which ``torch.compile`` cannot trace:
    the first read computes the value and stores it on the instance, where later reads find it."""

    def __init__(self, compute: Callable[[_Owner], _Value]) -> None:
        self.compute, self.name, self.__doc__ = compute, compute.__name__, compute.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> cached[_Owner, _Value]: ...

    @overload
    def __get__(self, instance: _Owner, owner: type[Any] | None = None) -> _Value: ...

    def __get__(self, instance: _Owner | None, owner: type[Any] | None = None) -> cached[_Owner, _Value] | _Value:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


def definitions_for(head: str) -> dict[str, str]:
    """Which definition the ``entropy`` and ``kl`` metrics use for a model with this head."""
    kind = "study" if head == "linear" else "softmax"
    return {"entropy": kind, "kl": kind}


@dataclass
class Outputs:
    """A batch of raw outputs (N, V) with the views the losses and metrics need, each computed once.

    The loss and the metrics of a chunk read the same views: the log-sum-exp, ``log p`` and ``p``
    are taken once for both, and so are the row sums the study's entropy and KL are made of
    (:attr:`entropy_of_clipped`, :attr:`log_clipped_sum`), which its entropy and KL penalties equal.
    """

    raw: torch.Tensor
    head: str

    @cached
    def logsumexp(self) -> torch.Tensor:
        """``log Σ_j exp z_j`` per row."""
        return torch.logsumexp(self.raw, dim=-1)

    @cached
    def log_probs(self) -> torch.Tensor:
        """``log p = z − log Σ_j exp z_j``."""
        return self.raw - self.logsumexp.unsqueeze(-1)

    @cached
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    @cached
    def prediction(self) -> torch.Tensor:
        """``y``: the raw outputs for a linear head, ``p`` for a softmax head."""
        return self.raw if self.head == "linear" else self.probs

    @cached
    def clipped(self) -> torch.Tensor:
        return clip(self.prediction)

    @cached
    def log_clipped(self) -> torch.Tensor:
        return self.clipped.log()

    @cached
    def inside_clip(self) -> torch.Tensor:
        """1 where ``ε ≤ y ≤ 1`` (there ``clip(y) = y``, and ``clip`` passes its gradient on, as ``clamp``'s), else 0.

        As floats, so that masking a derivative is one multiplication (a boolean mask costs several
        times that on a CPU)."""
        mask = torch.empty_like(self.raw, requires_grad=False)
        return torch.eq(self.clipped.detach(), self.prediction.detach(), out=mask)

    @cached
    def entropy_of_clipped(self) -> torch.Tensor:
        """:func:`study_entropy` of ``y``, per row: ``−Σ_j clip(y_j) log clip(y_j)``."""
        return -(self.clipped * self.log_clipped).sum(-1)

    @cached
    def log_clipped_sum(self) -> torch.Tensor:
        """``Σ_j log clip(y_j)`` per row, the study's KL to a one-hot row is made of (:meth:`study_kl_to_words`)."""
        return self.log_clipped.sum(-1)

    @cached
    def entropy_of_probs(self) -> torch.Tensor:
        """:func:`softmax_entropy`, per row: ``H(p) = −Σ_j p_j log p_j``."""
        return -(self.probs * self.log_probs).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Per-row entropy under the definition in force for this head (:func:`study_entropy` or :func:`softmax_entropy`)."""
        return self.entropy_of_clipped if self.head == "linear" else self.entropy_of_probs

    def study_kl_to_words(self, target_index: torch.Tensor) -> torch.Tensor:
        """:func:`study_kl` from the one-hot rows on ``target_index``, without building them: ``clip(t)`` is 1 at
        the next word ``k`` and ε elsewhere, so ``KL = −log clip(y_k) + ε((V−1) log ε − Σ_(j≠k) log clip(y_j))``."""
        at_target = self.log_clipped.gather(-1, target_index.unsqueeze(-1)).squeeze(-1)
        vocab = self.raw.shape[-1]
        return -at_target + EPSILON * ((vocab - 1) * math.log(EPSILON) - (self.log_clipped_sum - at_target))

    def kl_to_words(self, target_index: torch.Tensor) -> torch.Tensor:
        """Per-row KL from the one-hot rows on ``target_index`` under the definition in force for
        this head (:meth:`study_kl_to_words`, or :func:`softmax_kl`: ``−log p_k``)."""
        if self.head == "linear":
            return self.study_kl_to_words(target_index)
        return self.cross_entropy_to_words(target_index)

    def cross_entropy_to_words(self, target_index: torch.Tensor) -> torch.Tensor:
        """:func:`cross_entropy` of ``softmax(z)`` against one-hot rows: ``log Σ_j exp z_j − z_k``."""
        return self.logsumexp - self.raw.gather(-1, target_index.unsqueeze(-1)).squeeze(-1)


class _TotalsCount(TypedDict):
    count: int


class TotalsState(_TotalsCount, total=False):
    """:meth:`MetricTotals.state`: the count of predictions; once there are any, the sums and the predicted words' indices."""

    sums: list[float]
    predicted: list[int]


class MetricTotals:
    """Sums over predictions, kept on the device, turned into means by :meth:`summary`.

    - ``loss``: mean total objective per prediction
    - ``entropy``, ``kl``: means of the head's definitions above, against the true next word
    - ``accuracy``: share of predictions whose ``argmax z`` is the next word
    - ``perplexity``: ``exp(mean CE)`` of ``softmax(z)`` against the true next word, whatever the head
    - ``distinct_predictions``: how many different words ``argmax z`` names
    """

    def __init__(self) -> None:
        self.count = 0
        self._sums: torch.Tensor | None = None
        self._predicted: torch.Tensor | None = None

    @staticmethod
    def sums(outputs: Outputs, target_index: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A chunk's sums ``[loss, entropy, kl, correct, cross-entropy]`` (float64) and its ``argmax z`` words."""
        guesses = outputs.raw.argmax(-1)
        sums = torch.stack(
            [
                losses.detach().sum(),
                outputs.entropy().sum(),
                outputs.kl_to_words(target_index).sum(),
                (guesses == target_index).sum().to(losses.dtype),
                outputs.cross_entropy_to_words(target_index).sum(),
            ]
        ).double()
        return sums, guesses

    @torch.no_grad()
    def add(self, outputs: Outputs, target_index: torch.Tensor, losses: torch.Tensor) -> None:
        self.add_sums(*self.sums(outputs, target_index, losses), outputs.raw.shape[-1])

    @torch.no_grad()
    def add_sums(self, sums: torch.Tensor, guesses: torch.Tensor, vocab_size: int) -> None:
        """Add a chunk's :meth:`sums` and ``argmax`` words (one per prediction)."""
        if self._sums is None or self._predicted is None:  # both are set at the first chunk
            self._sums = torch.zeros_like(sums)
            self._predicted = torch.zeros(vocab_size, dtype=torch.bool, device=guesses.device)
        self._sums += sums
        self._predicted[guesses] = True
        self.count += guesses.numel()

    def merge(self, other: MetricTotals) -> None:
        """Add another window's totals to these."""
        if other._sums is None or other._predicted is None:
            return
        if self._sums is None or self._predicted is None:
            self._sums, self._predicted = other._sums.clone(), other._predicted.clone()
        else:
            self._sums += other._sums
            self._predicted |= other._predicted
        self.count += other.count

    def state(self) -> TotalsState:
        """JSON-able totals, so a run stopped mid-epoch resumes with that epoch's running means."""
        if self._sums is None or self._predicted is None:
            return {"count": 0}
        return {"count": self.count, "sums": self._sums.tolist(), "predicted": self._predicted.nonzero().flatten().tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, vocab_size: int, device: torch.device) -> MetricTotals:
        totals = cls()
        if state and state.get("count"):
            totals.count = state["count"]
            totals._sums = torch.tensor(state["sums"], dtype=torch.float64, device=device)
            totals._predicted = torch.zeros(vocab_size, dtype=torch.bool, device=device)
            totals._predicted[state["predicted"]] = True
        return totals

    def summary(self) -> dict[Quantity, float]:
        """The means by quantity; :func:`engine.metric_table.line_fields` gives them their keys in a metrics line."""
        n = max(self.count, 1)
        loss, entropy, kl, correct, ce = self._sums.tolist() if self._sums is not None else [0.0] * 5
        return {
            "loss": loss / n,
            "entropy": entropy / n,
            "kl": kl / n,
            "accuracy": correct / n,
            "perplexity": math.exp(min(ce / n, 700.0)),
            "distinct_predictions": int(self._predicted.sum()) if self._predicted is not None else 0,
        }
