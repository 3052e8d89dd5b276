"""What a term reads for one chunk of predictions: its outputs and targets, and the dense target rows built once per chunk."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.objective.metrics import Outputs, cached, clip


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
    """What every term reads: a chunk's outputs (:class:`~engine.objective.metrics.Outputs`, with their cached
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
