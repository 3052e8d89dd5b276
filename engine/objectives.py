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

Adding a term is a value function, a derivative function and one entry in :data:`BASE_LOSSES`
or :data:`REGULARIZERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch

from engine.config import ObjectiveConfig
from engine.metrics import Outputs, cached, clip

# -- targets ----------------------------------------------------------------------------------


@dataclass
class Targets:
    """The targets of a chunk of predictions, built from word indices where a term needs them.

    ``t = (1 − ε) one_hot(k) + ε / V`` (label smoothing, Szegedy et al. 2016, ε = ``smoothing``;
    ε = 0 is the plain one-hot target). Rows exist only per chunk, never for a whole batch.
    """

    index: torch.Tensor
    vocab_size: int
    smoothing: float = 0.0

    @cached
    def is_next_word(self) -> torch.Tensor:
        """Boolean (n, V): true at each row's next word ``k``."""
        return torch.arange(self.vocab_size, device=self.index.device) == self.index.unsqueeze(-1)

    def dense(self, dtype: torch.dtype) -> torch.Tensor:
        """``t`` as rows (n, V)."""
        one_hot = self.is_next_word.to(dtype)
        return smooth_labels(one_hot, self.smoothing) if self.smoothing else one_hot


def smooth_labels(one_hot: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Label smoothing (Szegedy et al. 2016) with the weight as ε: ``t' = (1 − ε) t + ε / V``."""
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


# -- base losses: value, then derivative ------------------------------------------------------


def mse(c: Chunk, param: float | None = None) -> torch.Tensor:
    """The study's control: ``MSE = (1/V) Σ_j (y_j − t_j)²`` on the head's output (raw for a linear head)."""
    return c.residual.pow(2).mean(-1)


def d_mse(c: Chunk, param: float | None = None) -> torch.Tensor:
    """``∂MSE/∂y_j = 2 (y_j − t_j) / V``."""
    return c.residual * (2.0 / c.t.shape[-1])


def ce(c: Chunk, param: float | None = None) -> torch.Tensor:
    """Softmax cross-entropy: ``CE = −Σ_j t_j log p_j``."""
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
    return -torch.logsumexp(_alpha_exponent(c, a), dim=-1).expm1() / (a * (1 - a))


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
    target_power = torch.logsumexp(b * c.log_t, dim=-1).expm1()
    cross = torch.logsumexp(c.log_t + (b - 1) * log_p, dim=-1).expm1()
    model_power = torch.logsumexp(b * log_p, dim=-1).expm1()
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
    target_term = torch.logsumexp(g * c.log_t, dim=-1) / (g * (g - 1))
    cross_term = torch.logsumexp(c.log_t + (g - 1) * log_p, dim=-1) / (g - 1)
    model_term = torch.logsumexp(g * log_p, dim=-1) / g
    return target_term - cross_term + model_term


def d_gamma(c: Chunk, param: float) -> torch.Tensor:
    """``∂D_γ/∂ log p_j = p_j^γ / Σ_i p_i^γ − t_j p_j^(γ−1) / Σ_i t_i p_i^(γ−1)`` (two softmaxes)."""
    g = float(param)
    if g == 1.0:
        return d_ce(c)
    log_p = c.outputs.log_probs
    return torch.softmax(g * log_p, dim=-1) - torch.softmax(c.log_t + (g - 1) * log_p, dim=-1)


# -- regularizers: value, then derivative -----------------------------------------------------


def entropy_penalty(c: Chunk) -> torch.Tensor:
    """The study's entropy penalty, added with + weight: ``H = −Σ_j clip(y_j) log clip(y_j)`` (penalizes high entropy)."""
    return -(c.outputs.clipped * c.outputs.log_clipped).sum(-1)


def d_entropy_penalty(c: Chunk) -> torch.Tensor:
    """``∂H/∂y_j = −(log y_j + 1)`` inside the clip range ``[ε, 1]``, 0 outside (Keras's clip)."""
    return torch.where(c.outputs.inside_clip, -(c.outputs.log_clipped + 1.0), 0.0)


def kl_penalty(c: Chunk) -> torch.Tensor:
    """The study's KL penalty: ``KL = Σ_j clip(t_j) log(clip(t_j) / clip(y_j))``, clip to [1e-7, 1]."""
    return (c.clipped_t * (c.clipped_t.log() - c.outputs.log_clipped)).sum(-1)


def d_kl_penalty(c: Chunk) -> torch.Tensor:
    """``∂KL/∂y_j = −clip(t_j) / y_j`` inside the clip range ``[ε, 1]``, 0 outside."""
    return torch.where(c.outputs.inside_clip, -c.clipped_t / c.outputs.clipped, 0.0)


def confidence_penalty(c: Chunk) -> torch.Tensor:
    """Pereyra et al. (2017): ``−H(p) = Σ_j p_j log p_j``, so weight × it penalizes low entropy."""
    log_p = c.outputs.log_probs
    return (log_p.exp() * log_p).sum(-1)


def d_confidence_penalty(c: Chunk) -> torch.Tensor:
    """``∂(−H)/∂ log p_j = p_j (log p_j + 1)``."""
    log_p = c.outputs.log_probs
    return c.outputs.probs * (log_p + 1.0)


Wrt = Literal["prediction", "log_probs"]


@dataclass(frozen=True)
class Term:
    """A term's value per prediction and its derivative per element with respect to ``wrt``."""

    value: Callable[..., torch.Tensor]
    derivative: Callable[..., torch.Tensor]
    wrt: Wrt


BASE_LOSSES: dict[str, Term] = {
    "mse": Term(mse, d_mse, "prediction"),
    "ce": Term(ce, d_ce, "log_probs"),
    "alpha": Term(alpha, d_alpha, "log_probs"),
    "beta": Term(beta, d_beta, "log_probs"),
    "gamma": Term(gamma, d_gamma, "log_probs"),
}


@dataclass(frozen=True)
class Regularizer:
    """A penalty added with the weight, or (label smoothing) a change of the targets, or neither."""

    penalty: Term | None = None
    smooths_targets: bool = False


REGULARIZERS: dict[str, Regularizer] = {
    "none": Regularizer(),
    "entropy": Regularizer(penalty=Term(entropy_penalty, d_entropy_penalty, "prediction")),
    "kl": Regularizer(penalty=Term(kl_penalty, d_kl_penalty, "prediction")),
    "confidence": Regularizer(penalty=Term(confidence_penalty, d_confidence_penalty, "log_probs")),
    "label-smoothing": Regularizer(smooths_targets=True),
}


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
        return Targets(target_index, vocab_size, self.config.weight if self.regularizer.smooths_targets else 0.0)

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
