"""Training objectives: total loss = base loss + weight × regularizer, each term a value and its derivative.

Notation as in :mod:`engine.objective.metrics`: per prediction, raw outputs ``z``, ``p = softmax(z)``, the
head's prediction ``y`` (``z`` for a linear head, ``p`` for a softmax head), the next word ``k`` and
the target distribution ``t`` (one-hot on ``k``, smoothed for label smoothing); sums run over the V
vocabulary words.

Every term is written twice, side by side: its value per prediction (shape (n,), plain torch, so
autograd can differentiate it too) and its derivative per element, with respect to the quantity
the term is naturally written in — the prediction ``y`` (``∂/∂y``) or the log-probabilities
``log p`` (``∂/∂ log p``). :meth:`Objective.losses_and_gradient` chains them to ``∂loss/∂z``:

- through ``y``: ``∂/∂z = ∂/∂y`` for a linear head; for a softmax head ``∂/∂ log p = p ⊙ ∂/∂y``;
- through ``log p`` (``log p = z − logsumexp z``): ``∂/∂z_j = g_j − p_j Σ_i g_i`` with ``g = ∂/∂ log p``.

The fused head (:mod:`engine.objective.head`) calls that per chunk of predictions; nothing outside it
builds target rows: an :class:`Objective` takes target word indices.

The terms themselves, each a value function and its derivative, and their registries by name
(:data:`~engine.objective.terms.BASE_LOSSES`, :data:`~engine.objective.terms.REGULARIZERS`) are in :mod:`engine.objective.terms`.
"""

from __future__ import annotations

from functools import partial

import torch

from engine.objective.chunk import Chunk, Targets
from engine.objective.metrics import Outputs
from engine.objective.terms import BASE_LOSSES, REGULARIZERS, ObjectiveSpec, Term


class Objective:
    """The configured total loss, per prediction: ``base(y, t) + weight × penalty(y, t)``.

    ``t`` is built from the next-word indices: one-hot, smoothed when the regularizer is label
    smoothing.
    """

    def __init__(self, config: ObjectiveSpec):
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
        sums: dict[str, torch.Tensor] = {}  # by what the derivatives are taken with respect to
        for weight, term in self._terms:
            derivative, total = term.derivative(chunk), sums.get(term.wrt)
            if total is not None:
                total.add_(derivative, alpha=weight)  # a term's derivative is its own new tensor (Term), so in place
            else:
                sums[term.wrt] = derivative if weight == 1.0 else derivative.mul_(weight)
        d_prediction, d_log_probs = sums.get("prediction"), sums.get("log_probs")
        if d_prediction is not None and outputs.head == "softmax":
            probs = outputs.probs
            d_log_probs = d_prediction.mul_(probs) if d_log_probs is None else d_log_probs.addcmul_(probs, d_prediction)
            d_prediction = None
        if d_log_probs is None:
            assert d_prediction is not None, "the base loss is always a term, so there is a derivative"
            return self._value(chunk), d_prediction
        gradient = d_log_probs.addcmul_(outputs.probs, d_log_probs.sum(-1, keepdim=True), value=-1.0)  # g − p Σ g
        if d_prediction is not None:
            gradient.add_(d_prediction)
        return self._value(chunk), gradient

    def _value(self, chunk: Chunk) -> torch.Tensor:
        (_, base), *penalties = self._terms
        losses = base.value(chunk)
        for weight, term in penalties:
            losses = losses + weight * term.value(chunk)
        return losses
