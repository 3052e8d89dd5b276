"""The difference of two groups' means with its 95 % interval: Welch's t, and the Student t quantile it needs.

Torch- and scipy-free (pure :mod:`math`), so the app, ``compare`` and ``reproduce`` share it and a
test checks it against ``scipy.stats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_SEEDS = 2  # a side's standard deviation needs two values


@dataclass(frozen=True)
class Difference:
    """``mean(a) − mean(b)`` with its interval at ``confidence``; ``df`` is Welch's degrees of freedom.

    ``low``/``high``/``df`` are NaN when a side has fewer than :data:`MIN_SEEDS` values.
    """

    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    n_a: int
    n_b: int
    difference: float
    low: float
    high: float
    df: float
    confidence: float

    @property
    def comparable(self) -> bool:
        """Both sides have at least two values, so the interval exists."""
        return min(self.n_a, self.n_b) >= MIN_SEEDS and math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def distinguishable(self) -> bool:
        """The interval excludes 0 (equivalently Welch's two-sided p < 1 − confidence)."""
        return self.comparable and (self.low > 0 or self.high < 0)


def mean_sd(values: list[float]) -> tuple[float, float]:
    """The mean ``x̄ = Σ x_i / n`` and the sample standard deviation ``s = √(Σ (x_i − x̄)² / (n − 1))`` (NaN for n < 2)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))


def welch_difference(a: list[float], b: list[float], confidence: float = 0.95) -> Difference:
    """The difference of the means of ``a`` and ``b`` and its Welch interval — the one place that computes them.

    With ``x̄``, ``s`` and ``n`` per side (:func:`mean_sd`):

    - difference ``d = x̄_a − x̄_b``
    - standard error ``se = √(s_a² / n_a + s_b² / n_b)``
    - Welch–Satterthwaite degrees of freedom
      ``df = se⁴ / ((s_a² / n_a)² / (n_a − 1) + (s_b² / n_b)² / (n_b − 1))``
    - interval ``d ± t_{(1 + confidence)/2, df} · se``, ``t_{q, df}`` the Student t quantile (:func:`t_quantile`)

    This is the interval that ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval()``
    gives. When both sides have no spread (``se = 0``) the interval is the point ``d`` itself and df is
    ``n_a + n_b − 2``. Fewer than two values on a side leave the interval (and df) NaN.
    """
    mean_a, sd_a = mean_sd(a)
    mean_b, sd_b = mean_sd(b)
    n_a, n_b = len(a), len(b)
    d = mean_a - mean_b
    if min(n_a, n_b) < MIN_SEEDS:
        return Difference(mean_a, mean_b, sd_a, sd_b, n_a, n_b, d, math.nan, math.nan, math.nan, confidence)
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(mean_a, mean_b, sd_a, sd_b, n_a, n_b, d, d, d, float(n_a + n_b - 2), confidence)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    half = t_quantile((1 + confidence) / 2, df) * se
    return Difference(mean_a, mean_b, sd_a, sd_b, n_a, n_b, d, d - half, d + half, df, confidence)


def t_tail(t: float, df: float) -> float:
    """Student's t upper tail for ``t ≥ 0``: ``P(T > t) = ½ I_{df/(df+t²)}(df/2, ½)``.

    ``I_x(a, b)`` is the regularized incomplete beta function (:func:`_incomplete_beta`); working
    with the tail, not ``1 − tail``, keeps its digits where it is small.
    """
    return 0.5 * _incomplete_beta(df / (df + t * t), df / 2, 0.5)


def t_quantile(q: float, df: float) -> float:
    """The ``t`` with ``P(T ≤ t) = q``, for ``0.5 ≤ q < 1``: the root of ``t_tail(t) = 1 − q``, by bisection to float precision."""
    tail = 1 - q
    low, high = 0.0, 1.0
    while t_tail(high, df) > tail:
        low, high = high, high * 2
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if t_tail(middle, df) > tail else (low, middle)
    return (low + high) / 2


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """``I_x(a, b) = B(x; a, b) / B(a, b)``, by the continued fraction of Numerical Recipes (§6.4, modified Lentz).

    ``I_x(a, b) = x^a (1 − x)^b / (a B(a, b)) · 1 / (1 + d₁ / (1 + d₂ / (1 + …)))`` with
    ``d_{2m+1} = −(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))`` and
    ``d_{2m} = m (b − m) x / ((a + 2m − 1)(a + 2m))``; it converges fast for ``x < (a + 1)/(a + b + 2)``,
    and ``I_x(a, b) = 1 − I_{1−x}(b, a)`` covers the rest.
    """
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(1 - x, b, a)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return math.exp(log_front) * fraction / a
