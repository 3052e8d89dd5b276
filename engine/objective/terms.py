"""The terms of every objective, by name: each base loss and regularizer as a value and its derivative.

Notation as in :mod:`engine.objective.metrics` and :mod:`engine.objective.total`: per prediction, raw outputs ``z``,
``p = softmax(z)``, the head's prediction ``y``, the next word ``k`` and the target distribution ``t``.
A term's value is per prediction (shape (n,)); its derivative is per element, with respect to the
prediction ``y`` or the log-probabilities ``log p`` (``wrt``); :class:`engine.objective.total.Objective`
chains them to ``∂loss/∂z``.

:data:`BASE_LOSSES` and :data:`REGULARIZERS` are the one list of names: the configuration's
``objective.loss`` and ``objective.regularizer`` accept their keys, and the CLI's choices, the
app's form and the README's table list them. So that the configuration reads them without
loading torch (seconds and hundreds of MB, ``docs/design/startup.md``, which the app's first
frame and ``lm-explorer runs`` must not wait for), this module does not import torch: the terms use tensor methods
(``x.logsumexp(-1)``, ``x.where(mask, 0.0)``); a test imports the configuration and checks.

Adding a regularizer is a value function, its derivative and one entry in :data:`REGULARIZERS`
(CONTRIBUTING.md works an example).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import torch

    from engine.objective.chunk import Chunk


class ObjectiveSpec(Protocol):
    """What an objective is made of (:class:`engine.config.models.ObjectiveConfig` is one): the names are this module's keys."""

    @property
    def loss(self) -> str: ...
    @property
    def loss_param(self) -> float | None: ...
    @property
    def regularizer(self) -> str: ...
    @property
    def weight(self) -> float: ...
    @property
    def epsilon(self) -> float: ...
    @property
    def strength(self) -> float: ...


# -- base losses: value, then derivative ------------------------------------------------------


def mse(c: Chunk, param: float | None = None) -> torch.Tensor:
    """The study's control: ``MSE = (1/V) Σ_j (y_j − t_j)²`` on the head's output (raw for a linear head)."""
    return (c.residual * c.residual).mean(-1)


def d_mse(c: Chunk, param: float | None = None) -> torch.Tensor:
    """``∂MSE/∂y_j = 2 (y_j − t_j) / V``."""
    return c.residual * (2.0 / c.t.shape[-1])


def ce(c: Chunk, param: float | None = None) -> torch.Tensor:
    """Softmax cross-entropy: ``CE = −Σ_j t_j log p_j`` (one-hot ``t``: ``log Σ_j exp z_j − z_k``, shared with the metrics' log-sum-exp)."""
    if c.targets.one_hot:
        return c.outputs.cross_entropy_to_words(c.targets.words(c.outputs.raw))
    return -(c.t * c.outputs.log_probs).sum(-1)


def d_ce(c: Chunk, param: float | None = None) -> torch.Tensor:
    """``∂CE/∂ log p_j = −t_j`` (so ``∂CE/∂z = p − t``)."""
    return -c.t


def alpha(c: Chunk, param: float) -> torch.Tensor:
    """Amari's α-divergence (Labeau & Cohen 2019), α > 0:

    ``D_α(t ‖ p) = 1/(α(1−α)) · Σ_j [α t_j + (1−α) p_j − t_j^α p_j^(1−α)]``.
    With Σ t = Σ p = 1 this is ``(1 − Σ_j t_j^α p_j^(1−α)) / (α(1−α))``; for one-hot ``t``,
    ``(1 − p_k^(1−α)) / (α(1−α))``. It tends to cross-entropy as α → 1, which α = 1 returns.
    ``1 − Σ …`` is taken by ``expm1`` of its log-sum-exp, accurate in float32 near α = 1.
    """
    a = float(param)
    if a == 1.0:
        return ce(c)
    return -_alpha_exponent(c, a).logsumexp(-1).expm1() / (a * (1 - a))


def d_alpha(c: Chunk, param: float) -> torch.Tensor:
    """``∂D_α/∂ log p_j = −t_j^α p_j^(1−α) / α``."""
    a = float(param)
    if a == 1.0:
        return d_ce(c)
    return _alpha_exponent(c, a).exp() / -a


def _alpha_exponent(c: Chunk, a: float) -> torch.Tensor:
    return a * c.log_t + (1 - a) * c.outputs.log_probs  # log(t^α p^(1−α))


def beta(c: Chunk, param: float) -> torch.Tensor:
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
        return ce(c)
    log_p = c.outputs.log_probs
    target_power = (b * c.log_t).logsumexp(-1).expm1()
    cross = (c.log_t + (b - 1) * log_p).logsumexp(-1).expm1()
    model_power = (b * log_p).logsumexp(-1).expm1()
    return (target_power - b * cross) / (b * (b - 1)) + model_power / b


def d_beta(c: Chunk, param: float) -> torch.Tensor:
    """``∂D_β/∂ log p_j = p_j^β − t_j p_j^(β−1)``."""
    b = float(param)
    if b == 1.0:
        return d_ce(c)
    log_p = c.outputs.log_probs
    return (b * log_p).exp() - (c.log_t + (b - 1) * log_p).exp()


def gamma(c: Chunk, param: float) -> torch.Tensor:
    """The γ-divergence (Fujisawa & Eguchi; Labeau & Cohen 2019), γ > 0:

    ``D_γ(t ‖ p) = log Σ_j t_j^γ / (γ(γ−1)) − log Σ_j t_j p_j^(γ−1) / (γ−1) + log Σ_j p_j^γ / γ``.
    For one-hot ``t`` it is ``−log p_k + (1/γ) log Σ_j p_j^γ``; it tends to cross-entropy as
    γ → 1, which γ = 1 returns.
    """
    g = float(param)
    if g == 1.0:
        return ce(c)
    log_p = c.outputs.log_probs
    target_term = (g * c.log_t).logsumexp(-1) / (g * (g - 1))
    cross_term = (c.log_t + (g - 1) * log_p).logsumexp(-1) / (g - 1)
    model_term = (g * log_p).logsumexp(-1) / g
    return target_term - cross_term + model_term


def d_gamma(c: Chunk, param: float) -> torch.Tensor:
    """``∂D_γ/∂ log p_j = p_j^γ / Σ_i p_i^γ − t_j p_j^(γ−1) / Σ_i t_i p_i^(γ−1)`` (two softmaxes)."""
    g = float(param)
    if g == 1.0:
        return d_ce(c)
    log_p = c.outputs.log_probs
    return (g * log_p).softmax(-1) - (c.log_t + (g - 1) * log_p).softmax(-1)


# -- regularizers: value, then derivative -----------------------------------------------------


def entropy_penalty(c: Chunk) -> torch.Tensor:
    """The study's entropy penalty, added with + weight: ``H = −Σ_j clip(y_j) log clip(y_j)`` (penalizes high entropy)."""
    return c.outputs.entropy_of_clipped


def d_entropy_penalty(c: Chunk) -> torch.Tensor:
    """``∂H/∂y_j = −(log y_j + 1)`` inside the clip range ``[ε, 1]``, 0 outside (Keras's clip)."""
    return inside_clip(c, (c.outputs.log_clipped + 1.0).neg_())


def kl_penalty(c: Chunk) -> torch.Tensor:
    """The study's KL penalty: ``KL = Σ_j clip(t_j) log(clip(t_j) / clip(y_j))``, clip to [1e-7, 1] (one-hot ``t``:
    :meth:`~engine.objective.metrics.Outputs.study_kl_to_words`, whose row sum the study's KL metric shares)."""
    if c.targets.one_hot:
        return c.outputs.study_kl_to_words(c.targets.words(c.outputs.raw))
    return (c.clipped_t * (c.clipped_t.log() - c.outputs.log_clipped)).sum(-1)


def d_kl_penalty(c: Chunk) -> torch.Tensor:
    """``∂KL/∂y_j = −clip(t_j) / y_j`` inside the clip range ``[ε, 1]``, 0 outside."""
    return c.inside_clip_ratio(-1.0)


def confidence_penalty(c: Chunk) -> torch.Tensor:
    """Pereyra et al. (2017): ``−H(p) = Σ_j p_j log p_j``, so weight × it penalizes low entropy."""
    return -c.outputs.entropy_of_probs


def d_confidence_penalty(c: Chunk) -> torch.Tensor:
    """``∂(−H)/∂ log p_j = p_j (log p_j + 1)``, as ``p_j + p_j log p_j`` in one pass."""
    return c.outputs.probs.addcmul(c.outputs.probs, c.outputs.log_probs)


def inside_clip(c: Chunk, derivative: torch.Tensor) -> torch.Tensor:
    """``derivative`` (a tensor the term has just made, masked in place) where ``ε ≤ y ≤ 1``, 0 elsewhere:
    the gradient Keras's clip passes on (as ``clamp``'s)."""
    return derivative.mul_(c.outputs.inside_clip)


Wrt = Literal["prediction", "log_probs"]


@dataclass(frozen=True)
class Term:
    """A term's value per prediction and its derivative per element with respect to ``wrt``;
    ``takes_param``: a base loss with a parameter (``objective.loss_param``).

    The derivative returns a new tensor, never one of the chunk's cached views: the objective
    sums the terms' derivatives into it in place, one pass each."""

    value: Callable[..., torch.Tensor]
    derivative: Callable[..., torch.Tensor]
    wrt: Wrt
    takes_param: bool = False


BASE_LOSSES: dict[str, Term] = {
    "mse": Term(mse, d_mse, "prediction"),
    "ce": Term(ce, d_ce, "log_probs"),
    "alpha": Term(alpha, d_alpha, "log_probs", takes_param=True),
    "beta": Term(beta, d_beta, "log_probs", takes_param=True),
    "gamma": Term(gamma, d_gamma, "log_probs", takes_param=True),
}


@dataclass(frozen=True)
class Regularizer:
    """A penalty added with the weight, or (label smoothing) a change of the targets by ``objective.epsilon``, or neither."""

    penalty: Term | None = None
    smooths_targets: bool = False


REGULARIZERS: dict[str, Regularizer] = {
    "none": Regularizer(),
    "entropy": Regularizer(penalty=Term(entropy_penalty, d_entropy_penalty, "prediction")),
    "kl": Regularizer(penalty=Term(kl_penalty, d_kl_penalty, "prediction")),
    "confidence": Regularizer(penalty=Term(confidence_penalty, d_confidence_penalty, "log_probs")),
    "label-smoothing": Regularizer(smooths_targets=True),
}
