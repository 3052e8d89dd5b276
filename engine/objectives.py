"""Training objectives: total loss = base loss + weight × regularizer, each term a value and its derivative.

Notation as in :mod:`engine.metrics`: per prediction, raw outputs ``z``, ``p = softmax(z)``, the
head's prediction ``y`` (``z`` for a linear head, ``p`` for a softmax head), the next word ``k`` and
the target distribution ``t`` (one-hot on ``k``, smoothed for label smoothing); sums run over the V
vocabulary words.

Every term is written twice, side by side: its value per prediction (shape (n,), plain torch, so
autograd can differentiate it too) and its derivative per element, with respect to the quantity
the term is naturally written in — the prediction ``y`` (``∂/∂y``) or the log-probabilities
``log p`` (``∂/∂ log p``). :meth:`Objective.losses_and_gradient` chains them to ``∂loss/∂z``:

- through ``y``: ``∂/∂z = ∂/∂y`` for a linear head; for a softmax head ``∂/∂ log p = p ⊙ ∂/∂y``;
- through ``log p`` (``log p = z − logsumexp z``): ``∂/∂z_j = g_j − p_j Σ_i g_i`` with ``g = ∂/∂ log p``.

The fused head (:mod:`engine.head`) calls that per chunk of predictions; nothing outside it
builds target rows: an :class:`Objective` takes target word indices.

The terms themselves, each a value function and its derivative, and their registries by name
(:data:`~engine.terms.BASE_LOSSES`, :data:`~engine.terms.REGULARIZERS`) are in :mod:`engine.terms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from engine.config import ObjectiveConfig
from engine.metrics import Outputs, cached, clip
from engine.terms import BASE_LOSSES, REGULARIZERS, Term

# -- targets ----------------------------------------------------------------------------------


@dataclass
class Targets:
    """The targets of a chunk of predictions, built from word indices where a term needs them.

    ``t = (1 − ε) one_hot(k) + ε / V`` (label smoothing, Szegedy et al. 2016; ε = 0 is the plain
    one-hot target). Rows exist only per chunk, never for a whole batch.
    """

    index: torch.Tensor
    vocab_size: int
    epsilon: float = 0.0

    @cached
    def is_next_word(self) -> torch.Tensor:
        """Boolean (n, V): true at each row's next word ``k``."""
        return torch.arange(self.vocab_size, device=self.index.device) == self.index.unsqueeze(-1)

    def dense(self, dtype: torch.dtype) -> torch.Tensor:
        """``t`` as rows (n, V)."""
        one_hot = self.is_next_word.to(dtype)
        return smooth_labels(one_hot, self.epsilon) if self.epsilon else one_hot


def smooth_labels(one_hot: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Label smoothing (Szegedy et al. 2016): ``t' = (1 − ε) t + ε / V``."""
    return one_hot * (1.0 - epsilon) + epsilon / one_hot.shape[-1]


class Chunk:
    """What every term reads: a chunk's outputs (:class:`~engine.metrics.Outputs`, with their cached
    views) and targets, plus the dense target rows ``t`` and ``log t``, built once per chunk."""

    def __init__(self, outputs: Outputs, targets: Targets):
        self.outputs, self.targets = outputs, targets

    @cached
    def t(self) -> torch.Tensor:
        return self.targets.dense(self.outputs.raw.dtype)

    @cached
    def log_t(self) -> torch.Tensor:
        return self.t.log()  # −inf where t_j = 0: those words drop out of every log-sum-exp below

    @cached
    def residual(self) -> torch.Tensor:
        """``y − t``."""
        return self.outputs.prediction - self.t

    @cached
    def clipped_t(self) -> torch.Tensor:
        return clip(self.t)


class Objective:
    """The configured total loss, per prediction: ``base(y, t) + weight × penalty(y, t)``.

    ``t`` is built from the next-word indices: one-hot, smoothed when the regularizer is label
    smoothing.
    """

    def __init__(self, config: ObjectiveConfig):
        self.config = config
        self.regularizer = REGULARIZERS[config.regularizer]
        base, penalty = BASE_LOSSES[config.loss], self.regularizer.penalty
        param = config.loss_param
        self._terms = [(1.0, Term(partial(base.value, param=param), partial(base.derivative, param=param), base.wrt))]
        if penalty is not None and config.weight != 0:
            self._terms.append((config.weight, penalty))

    def targets(self, target_index: torch.Tensor, vocab_size: int) -> Targets:
        """The targets of these next words, smoothed for label smoothing."""
        return Targets(target_index, vocab_size, self.config.epsilon)

    def losses(self, outputs: Outputs, target_index: torch.Tensor) -> torch.Tensor:
        """Per-prediction total loss (n,), differentiable by autograd (the reference the head is tested against)."""
        chunk = Chunk(outputs, self.targets(target_index, outputs.raw.shape[-1]))
        return self._value(chunk)

    def losses_and_gradient(self, outputs: Outputs, target_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-prediction losses (n,) and their derivatives ``∂loss_i/∂z_i`` (n, V), in closed form."""
        chunk = Chunk(outputs, self.targets(target_index, outputs.raw.shape[-1]))
        d_prediction = d_log_probs = None
        for weight, term in self._terms:
            derivative = term.derivative(chunk)
            if weight != 1.0:
                derivative = weight * derivative
            if term.wrt == "prediction":
                d_prediction = derivative if d_prediction is None else d_prediction + derivative
            else:
                d_log_probs = derivative if d_log_probs is None else d_log_probs + derivative
        if d_prediction is not None and outputs.head == "softmax":
            through_p = outputs.probs * d_prediction
            d_log_probs = through_p if d_log_probs is None else d_log_probs + through_p
            d_prediction = None
        gradient = d_prediction
        if d_log_probs is not None:
            through_log_softmax = d_log_probs - outputs.probs * d_log_probs.sum(-1, keepdim=True)
            gradient = through_log_softmax if gradient is None else gradient + through_log_softmax
        assert gradient is not None, "the base loss is always a term, so there is a derivative"
        return self._value(chunk), gradient

    def _value(self, chunk: Chunk) -> torch.Tensor:
        (_, base), *penalties = self._terms
        losses = base.value(chunk)
        for weight, term in penalties:
            losses = losses + weight * term.value(chunk)
        return losses
