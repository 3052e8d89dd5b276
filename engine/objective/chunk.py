"""What a term reads for one chunk of predictions: its outputs and targets, and the target rows built once per chunk.

Without label smoothing the targets are one-hot, and every view of them (``t``, ``log t``,
``clip(t)``, ``y − t``) is a constant row with one other value at the next word ``k``: each is
built in one pass over the chunk (a fill or a copy) and a write at ``k``, never by comparing every
column with ``k`` nor by taking logarithms of zeros and ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.objective.metrics import EPSILON, Outputs, cached, clip


@dataclass
class Targets:
    """The targets of a chunk of predictions, built from word indices where a term needs them.

    ``t = (1 − ε) one_hot(k) + ε / V`` (label smoothing, Szegedy et al. 2016; ε = 0 is the plain
    one-hot target). Rows exist only per chunk, never for a whole batch. ``index`` holds one word
    per prediction; outputs with more leading axes (a stack's ``(R, n, V)``) share it.
    """

    index: torch.Tensor
    vocab_size: int
    epsilon: float = 0.0

    @property
    def one_hot(self) -> bool:
        """Whether ``t`` is the plain one-hot row (no label smoothing)."""
        return not self.epsilon

    def words(self, like: torch.Tensor) -> torch.Tensor:
        """Each prediction's next word for outputs ``like`` (…, V): the index, expanded to (…)."""
        return self.index.expand(like.shape[:-1])

    def at_words(self, like: torch.Tensor) -> torch.Tensor:
        """:meth:`words` shaped for ``gather``/``scatter`` on ``like``: (…, 1)."""
        return self.words(like).unsqueeze(-1)

    def with_next_words(self, row: torch.Tensor, value: float) -> torch.Tensor:
        """``row`` (…, V), owned by the caller, with ``value`` written at each next word, in place."""
        return row.scatter_(-1, self.at_words(row), value)

    def dense(self, dtype: torch.dtype) -> torch.Tensor:
        """``t`` as rows (n, V)."""
        one_hot = self.with_next_words(
            torch.zeros(*self.index.shape, self.vocab_size, dtype=dtype, device=self.index.device), 1.0
        )
        return smooth_labels(one_hot, self.epsilon) if self.epsilon else one_hot


def smooth_labels(one_hot: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Label smoothing (Szegedy et al. 2016): ``t' = (1 − ε) t + ε / V``."""
    return one_hot * (1.0 - epsilon) + epsilon / one_hot.shape[-1]


class Chunk:
    """What every term reads: a chunk's outputs (:class:`~engine.objective.metrics.Outputs`, with their cached
    views) and targets, plus the target rows ``t``, ``log t``, ``clip(t)`` and ``y − t``, built once per chunk."""

    def __init__(self, outputs: Outputs, targets: Targets):
        self.outputs, self.targets = outputs, targets

    @cached
    def t(self) -> torch.Tensor:
        return self.targets.dense(self.outputs.raw.dtype)

    @cached
    def log_t(self) -> torch.Tensor:
        """``log t``: −inf where ``t_j = 0``, so those words drop out of every log-sum-exp (one-hot: 0 at ``k``, −inf elsewhere)."""
        if self.targets.one_hot:
            return self.targets.with_next_words(torch.full_like(self.outputs.raw, -math.inf), 0.0)
        return self.t.log()

    @cached
    def residual(self) -> torch.Tensor:
        """``y − t`` (one-hot: ``y`` with 1 taken off at ``k``, differentiable)."""
        prediction = self.outputs.prediction
        if self.targets.one_hot:
            index = self.targets.at_words(prediction)
            return prediction.scatter_add(-1, index, prediction.new_full(index.shape, -1.0))
        return prediction - self.t

    @cached
    def clipped_t(self) -> torch.Tensor:
        """``clip(t)`` (one-hot: ε, and 1 at ``k``)."""
        if self.targets.one_hot:
            return self.targets.with_next_words(torch.full_like(self.outputs.raw, EPSILON), 1.0)
        return clip(self.t)

    def inside_clip_ratio(self, scale: float = 1.0) -> torch.Tensor:
        """``scale · clip(t_j) / clip(y_j)`` where ``ε ≤ y_j ≤ 1`` and 0 elsewhere, a new tensor the caller owns; not
        differentiable. One-hot: ``inside / clip(y)`` (one pass, which masks as it divides) times ``scale · ε``,
        and times ``scale`` at ``k``."""
        outputs = self.outputs
        clipped = outputs.clipped.detach()
        if not self.targets.one_hot:
            return (self.clipped_t / clipped).mul_(outputs.inside_clip).mul_(scale)
        ratio = outputs.inside_clip / clipped
        index = self.targets.at_words(ratio)
        at_words = ratio.gather(-1, index).mul_(scale)
        return ratio.mul_(scale * EPSILON).scatter_(-1, index, at_words)
