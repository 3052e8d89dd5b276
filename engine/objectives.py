"""Training objectives: total loss = base loss + weight × regularizer, each term a pure function.

Notation as in :mod:`engine.metrics`: per prediction, raw outputs ``z``, ``p = softmax(z)``, the
head's prediction ``y``, target distribution ``t``; sums run over the V vocabulary words. Every
function returns one value per prediction (shape (N,)); the trainer averages them.

Adding a term is one function plus one entry in :data:`BASE_LOSSES` or :data:`REGULARIZERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.config import ObjectiveConfig
from engine.metrics import Outputs, cross_entropy, softmax_entropy, study_entropy, study_kl

# -- base losses ------------------------------------------------------------------------------


def mse(outputs: Outputs, target: torch.Tensor, param: float | None = None) -> torch.Tensor:
    """The study's control: ``MSE = (1/V) Σ_j (y_j − t_j)²`` on the head's output (raw for a linear head)."""
    return (outputs.prediction - target).pow(2).mean(-1)


def ce(outputs: Outputs, target: torch.Tensor, param: float | None = None) -> torch.Tensor:
    """Softmax cross-entropy: ``CE = −Σ_j t_j log p_j``."""
    return cross_entropy(outputs.log_probs, target)


def _log_target(target: torch.Tensor) -> torch.Tensor:
    return target.log()  # −inf where t_j = 0: those words drop out of every log-sum-exp below


def alpha(outputs: Outputs, target: torch.Tensor, param: float | None) -> torch.Tensor:
    """Amari's α-divergence (Labeau & Cohen 2019), α > 0:

    ``D_α(t ‖ p) = 1/(α(1−α)) · Σ_j [α t_j + (1−α) p_j − t_j^α p_j^(1−α)]``.
    With Σ t = Σ p = 1 this is ``(1 − Σ_j t_j^α p_j^(1−α)) / (α(1−α))``; for one-hot ``t``,
    ``(1 − p_k^(1−α)) / (α(1−α))``. It tends to cross-entropy as α → 1, which α = 1 returns.
    ``1 − Σ …`` is taken by ``expm1`` of its log-sum-exp, accurate in float32 near α = 1.
    """
    a = float(param)
    if a == 1.0:
        return ce(outputs, target)
    mixed_minus_one = torch.logsumexp(a * _log_target(target) + (1 - a) * outputs.log_probs, dim=-1).expm1()
    return -mixed_minus_one / (a * (1 - a))


def beta(outputs: Outputs, target: torch.Tensor, param: float | None) -> torch.Tensor:
    """The β-divergence (Labeau & Cohen 2019), β > 0:

    ``D_β(t ‖ p) = Σ_j [t_j^β / (β(β−1)) − t_j p_j^(β−1) / (β−1) + p_j^β / β]``.
    At β = 2 it is half the squared error ``½ Σ_j (p_j − t_j)²``; it tends to cross-entropy as
    β → 1, which β = 1 returns.

    Near β = 1 the three sums are each close to 1 and their scaled terms nearly cancel, so it is
    computed as ``[(A − 1) − β(B − 1)] / (β(β−1)) + (C − 1)/β`` with ``A = Σ t^β``,
    ``B = Σ t p^(β−1)``, ``C = Σ p^β`` and each ``X − 1`` taken by ``expm1`` (equal, since
    ``1 − β + (β − 1) = 0``), which keeps float32 accurate.
    """
    b = float(param)
    if b == 1.0:
        return ce(outputs, target)
    log_t, log_p = _log_target(target), outputs.log_probs
    target_power = torch.logsumexp(b * log_t, dim=-1).expm1()
    cross = torch.logsumexp(log_t + (b - 1) * log_p, dim=-1).expm1()
    model_power = torch.logsumexp(b * log_p, dim=-1).expm1()
    return (target_power - b * cross) / (b * (b - 1)) + model_power / b


def gamma(outputs: Outputs, target: torch.Tensor, param: float | None) -> torch.Tensor:
    """The γ-divergence (Fujisawa & Eguchi; Labeau & Cohen 2019), γ > 0:

    ``D_γ(t ‖ p) = log Σ_j t_j^γ / (γ(γ−1)) − log Σ_j t_j p_j^(γ−1) / (γ−1) + log Σ_j p_j^γ / γ``.
    For one-hot ``t`` it is ``−log p_k + (1/γ) log Σ_j p_j^γ``; it tends to cross-entropy as
    γ → 1, which γ = 1 returns.
    """
    g = float(param)
    if g == 1.0:
        return ce(outputs, target)
    log_t, log_p = _log_target(target), outputs.log_probs
    target_term = torch.logsumexp(g * log_t, dim=-1) / (g * (g - 1))
    cross_term = torch.logsumexp(log_t + (g - 1) * log_p, dim=-1) / (g - 1)
    model_term = torch.logsumexp(g * log_p, dim=-1) / g
    return target_term - cross_term + model_term


# -- regularizers -----------------------------------------------------------------------------


def entropy_penalty(outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
    """The study's entropy penalty, added with + weight: ``H = −Σ_j clip(y_j) log clip(y_j)`` (penalizes high entropy)."""
    return study_entropy(outputs.prediction)


def kl_penalty(outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
    """The study's KL penalty: ``KL = Σ_j clip(t_j) log(clip(t_j) / clip(y_j))``, clip to [1e-7, 1]."""
    return study_kl(target, outputs.prediction)


def confidence_penalty(outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
    """Pereyra et al. (2017): ``−H(p) = Σ_j p_j log p_j``, so weight × it penalizes low entropy."""
    return -softmax_entropy(outputs.log_probs)


def smooth_labels(one_hot: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Label smoothing (Szegedy et al. 2016) with the weight as ε: ``t' = (1 − ε) t + ε / V``."""
    return one_hot * (1.0 - epsilon) + epsilon / one_hot.shape[-1]


BaseLoss = Callable[[Outputs, torch.Tensor, float | None], torch.Tensor]
Penalty = Callable[[Outputs, torch.Tensor], torch.Tensor]

BASE_LOSSES: dict[str, BaseLoss] = {"mse": mse, "ce": ce, "alpha": alpha, "beta": beta, "gamma": gamma}


@dataclass(frozen=True)
class Regularizer:
    """A penalty added with the weight, or (label smoothing) a change of the targets, or neither."""

    penalty: Penalty | None = None
    smooths_targets: bool = False


REGULARIZERS: dict[str, Regularizer] = {
    "none": Regularizer(),
    "entropy": Regularizer(penalty=entropy_penalty),
    "kl": Regularizer(penalty=kl_penalty),
    "confidence": Regularizer(penalty=confidence_penalty),
    "label-smoothing": Regularizer(smooths_targets=True),
}


class Objective:
    """The configured total loss, per prediction: ``base(y, t') + weight × penalty(y, t')``.

    ``t'`` is the one-hot target, smoothed when the regularizer is label smoothing.
    """

    def __init__(self, config: ObjectiveConfig):
        self.config = config
        self.base = BASE_LOSSES[config.loss]
        self.regularizer = REGULARIZERS[config.regularizer]

    def targets(self, target_index: torch.Tensor, vocab_size: int, dtype: torch.dtype) -> torch.Tensor:
        """The batch's target rows the loss is taken against: one-hot, smoothed for label smoothing."""
        one_hot = F.one_hot(target_index, vocab_size).to(dtype)
        if self.regularizer.smooths_targets:
            return smooth_labels(one_hot, self.config.weight)
        return one_hot

    def __call__(self, outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
        losses = self.base(outputs, target, self.config.loss_param)
        if self.regularizer.penalty is not None and self.config.weight != 0:
            losses = losses + self.config.weight * self.regularizer.penalty(outputs, target)
        return losses
