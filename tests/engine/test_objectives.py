"""Every base loss and regularizer against values worked out by hand on a 3-word vocabulary.

The running example: raw outputs z = [2.0, 0.5, −1.0], target word 0 (one-hot t = [1, 0, 0]).

    e^z = [7.389056, 1.648721, 0.367879],  S = Σ e^z = 9.405657,  log S = 2.241311
    log p = z − log S = [−0.241311, −1.741311, −3.241311]
    p = [0.785597, 0.175290, 0.039113]
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from engine.config.models import ObjectiveConfig
from engine.config.presets import build_run_config
from engine.config.settings import setting
from engine.errors import UserError
from engine.objective.chunk import Chunk, Targets, smooth_labels
from engine.objective.metrics import EPSILON, Outputs, clip
from engine.objective.terms import (
    BASE_LOSSES,
    REGULARIZERS,
    Regularizer,
    Term,
    alpha,
    beta,
    ce,
    confidence_penalty,
    d_confidence_penalty,
    d_entropy_penalty,
    d_kl_penalty,
    entropy_penalty,
    gamma,
    kl_penalty,
    mse,
)
from engine.objective.total import Objective

Z = [2.0, 0.5, -1.0]
P = [0.7855970345892759, 0.1752903921400367, 0.039112573270687456]
LOG_P = [-0.24131129665715703, -1.7413112966571571, -3.241311296657157]


def outputs(head: str = "softmax", dtype: torch.dtype = torch.float64, z=Z) -> Outputs:
    return Outputs(torch.tensor([z], dtype=dtype), head)


def chunk(head: str = "softmax", k: int = 0, z=Z, epsilon: float = 0.0) -> Chunk:
    """The running example (or raw outputs ``z``) with next word ``k``."""
    return rows(torch.tensor([z], dtype=torch.float64), torch.tensor([k]), head, epsilon)


def rows(raw: torch.Tensor, index: torch.Tensor, head: str = "softmax", epsilon: float = 0.0) -> Chunk:
    """Raw outputs (n, V) with next words ``index`` (n,)."""
    return Chunk(Outputs(raw, head), Targets(index, raw.shape[-1], epsilon))


def value(tensor: torch.Tensor) -> float:
    assert tensor.shape == (1,), "every term returns one value per prediction"
    return tensor.item()


def test_the_worked_softmax_is_what_the_engine_computes():
    out = outputs()
    assert out.probs[0].tolist() == pytest.approx(P, abs=1e-12)
    assert out.log_probs[0].tolist() == pytest.approx(LOG_P, abs=1e-12)
    assert out.prediction is out.probs  # softmax head: y = p
    assert outputs("linear").prediction[0].tolist() == Z  # linear head: y = z


# -- base losses ------------------------------------------------------------------------------


def test_mse_on_the_raw_outputs_of_a_linear_head():
    # ((2 − 1)² + (0.5 − 0)² + (−1 − 0)²) / 3 = (1 + 0.25 + 1) / 3 = 0.75
    assert value(mse(chunk("linear", 0))) == pytest.approx(0.75, abs=1e-12)
    # target 1: (2² + (0.5 − 1)² + 1²) / 3 = (4 + 0.25 + 1) / 3 = 1.75
    assert value(mse(chunk("linear", 1))) == pytest.approx(1.75, abs=1e-12)


def test_mse_on_the_probabilities_of_a_softmax_head():
    # ((0.785597 − 1)² + 0.175290² + 0.039113²) / 3 = (0.045968 + 0.030727 + 0.001530) / 3 = 0.026075
    assert value(mse(chunk("softmax", 0))) == pytest.approx(0.0260750488, abs=1e-9)


def test_cross_entropy():
    # −log p_0 = 0.241311; −log p_1 = 1.741311
    assert value(ce(chunk("softmax", 0))) == pytest.approx(0.2413112967, abs=1e-9)
    assert value(ce(chunk("softmax", 1))) == pytest.approx(1.7413112967, abs=1e-9)
    # the head does not matter: CE is always on softmax(z)
    assert value(ce(chunk("linear", 1))) == pytest.approx(1.7413112967, abs=1e-9)


def test_alpha_divergence():
    # one-hot: (1 − p_k^(1−α)) / (α(1−α))
    # α = 2:   (1 − 0.785597^−1) / (2·(−1)) = (1 − 1.272918) / −2 = 0.136459
    assert value(alpha(chunk("softmax", 0), 2.0)) == pytest.approx(0.1364586143, abs=1e-9)
    # α = 0.5: (1 − 0.785597^0.5) / (0.5·0.5) = (1 − 0.886339) / 0.25 = 0.454644
    assert value(alpha(chunk("softmax", 0), 0.5)) == pytest.approx(0.4546435224, abs=1e-9)


def test_beta_divergence():
    # one-hot: 1/(β(β−1)) − p_k^(β−1)/(β−1) + Σ p_j^β / β
    # β = 3:   1/6 − 0.785597²/2 + (0.785597³ + 0.175290³ + 0.039113³)/3
    #        = 0.166667 − 0.308581 + (0.484839 + 0.005386 + 0.000060)/3 = 0.021514
    assert value(beta(chunk("softmax", 0), 3.0)) == pytest.approx(0.0215143566, abs=1e-9)
    # β = 0.5: 1/(0.5·(−0.5)) − 0.785597^(−0.5)/(−0.5) + (Σ p_j^0.5)/0.5
    #        = −4 + 2·1.128235 + 2·(0.886339 + 0.418677 + 0.197769) = 1.262043
    assert value(beta(chunk("softmax", 0), 0.5)) == pytest.approx(1.2620427977, abs=1e-9)


def test_beta_at_two_is_half_the_squared_error_between_probabilities_and_one_hot():
    # ½ ((0.785597 − 1)² + 0.175290² + 0.039113²) = ½ · 0.078225 = 0.039113
    assert value(beta(chunk("softmax", 0), 2.0)) == pytest.approx(0.0391125733, abs=1e-9)
    z = torch.randn(64, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    target = F.one_hot(torch.arange(64) % 20, 20).to(torch.float64)
    half_squared = 0.5 * (torch.softmax(z, -1) - target).pow(2).sum(-1)
    assert torch.allclose(beta(rows(z, torch.arange(64) % 20), 2.0), half_squared, atol=1e-12)


def test_gamma_divergence():
    # one-hot: −log p_k + (1/γ) log Σ p_j^γ
    # γ = 2: 0.241311 + ½ log(0.617163 + 0.030727 + 0.001530) = 0.241311 + ½ log 0.649420 = 0.025473
    assert value(gamma(chunk("softmax", 0), 2.0)) == pytest.approx(0.0254728818, abs=1e-9)
    # γ = 3: 0.241311 + ⅓ log(0.484839 + 0.005386 + 0.000060) = 0.241311 + ⅓ log 0.490285 = 0.003723
    assert value(gamma(chunk("softmax", 0), 3.0)) == pytest.approx(0.0037232638, abs=1e-9)


@pytest.mark.parametrize("loss", [alpha, beta, gamma])
def test_power_divergences_at_parameter_one_are_exactly_cross_entropy(loss):
    c = rows(torch.tensor([Z] * 3), torch.arange(3))
    assert torch.equal(loss(c, 1.0), ce(c))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32 (as trained)"])
@pytest.mark.parametrize("loss", [alpha, beta, gamma])
@pytest.mark.parametrize("param", [1 + 1e-4, 1 - 1e-4])
def test_power_divergences_tend_to_cross_entropy(loss, param, dtype):
    c = rows(torch.tensor([Z] * 3, dtype=dtype), torch.arange(3))  # each of the 3 words as target
    reference = torch.tensor([-lp for lp in LOG_P], dtype=torch.float64)  # CE = −log p_k, by hand above
    gap = (loss(c, param).double() - reference).abs().max().item()
    assert gap < 1e-3, f"{loss.__name__}({param}) is {gap:.2e} from cross-entropy in {dtype}"


@pytest.mark.parametrize("loss", [alpha, beta, gamma])
def test_power_divergences_approach_cross_entropy_as_the_parameter_nears_one(loss):
    c = chunk("softmax", 2)  # the hardest target: −log p_2 = 3.241311
    gaps = [abs(value(loss(c, 1 + h)) - 3.2413112967) for h in (1e-1, 1e-2, 1e-3)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < gaps[0] / 50


@pytest.mark.parametrize("loss", [alpha, beta, gamma])
def test_power_divergences_are_zero_at_a_perfect_prediction_and_positive_elsewhere(loss):
    near_perfect = chunk("softmax", 0, z=[40.0, 0.0, 0.0])
    assert abs(value(loss(near_perfect, 2.0))) < 1e-12
    assert value(loss(chunk("softmax", 1), 2.0)) > 0


# -- regularizers -----------------------------------------------------------------------------


def test_clip_is_keras_clip_to_epsilon_and_one():
    values = torch.tensor([2.0, 1.0, 0.5, 1e-7, 1e-9, 0.0, -1.0], dtype=torch.float64)
    assert clip(values).tolist() == [1.0, 1.0, 0.5, 1e-7, 1e-7, 1e-7, 1e-7]
    assert EPSILON == 1e-7


def test_study_entropy_clips_the_raw_outputs():
    # clip(z) = [1, 0.5, 1e-7]: −(1·log 1 + 0.5·log 0.5 + 1e-7·log 1e-7)
    #   = −(0 − 0.346574 − 1.6118e-6) = 0.3465752021
    assert value(entropy_penalty(chunk("linear", 0))) == pytest.approx(0.3465752021, abs=1e-10)
    # anything above 1 counts as 1 (contributes 0), anything below 1e-7 as 1e-7
    above = chunk("linear", 0, z=[50.0, 0.5, -1.0])
    below = chunk("linear", 0, z=[2.0, 0.5, -1e6])
    assert value(entropy_penalty(above)) == pytest.approx(0.3465752021, abs=1e-10)
    assert value(entropy_penalty(below)) == pytest.approx(0.3465752021, abs=1e-10)


def test_study_entropy_has_zero_gradient_outside_the_clip_range():
    z = torch.tensor([Z], dtype=torch.float64, requires_grad=True)
    entropy_penalty(rows(z, torch.tensor([0]), "linear")).sum().backward()
    # d/dy (−y log y) = −(log y + 1): at 0.5 that is −(−0.693147 + 1) = −0.306853; 0 where clipped
    assert z.grad[0].tolist() == pytest.approx([0.0, -0.3068528194, 0.0], abs=1e-10)
    assert d_entropy_penalty(chunk("linear", 0))[0].tolist() == pytest.approx([0.0, -0.3068528194, 0.0], abs=1e-10)


def test_study_kl_clips_target_and_prediction():
    # target 1: clip(t) = [1e-7, 1, 1e-7], clip(y) = [1, 0.5, 1e-7]
    #   1e-7·log(1e-7/1) + 1·log(1/0.5) + 1e-7·log(1e-7/1e-7) = −1.6118e-6 + 0.693147 + 0 = 0.6931455688
    assert value(kl_penalty(chunk("linear", 1))) == pytest.approx(0.6931455688, abs=1e-10)
    # target 0: 1·log(1/1) + 1e-7·log(1e-7/0.5) + 1e-7·log(1) = 1e-7·(−16.118096 + 0.693147) = −1.5425e-6
    assert value(kl_penalty(chunk("linear", 0))) == pytest.approx(-1.5424948e-6, abs=1e-12)


def test_study_kl_has_zero_gradient_outside_the_clip_range():
    z = torch.tensor([Z], dtype=torch.float64, requires_grad=True)
    kl_penalty(rows(z, torch.tensor([1]), "linear")).sum().backward()
    # d/dy_j (−clip(t_j) log y_j) = −t_j / y_j: at y_1 = 0.5 with t_1 = 1 that is −2; 0 where y is clipped
    assert z.grad[0].tolist() == pytest.approx([0.0, -2.0, 0.0], abs=1e-10)
    assert d_kl_penalty(chunk("linear", 1))[0].tolist() == pytest.approx([0.0, -2.0, 0.0], abs=1e-10)


def test_confidence_penalty_is_minus_the_softmax_entropy():
    # H(p) = −Σ p log p = 0.785597·0.241311 + 0.175290·1.741311 + 0.039113·3.241311
    #      = 0.189574 + 0.305234 + 0.126777 = 0.621585
    assert value(confidence_penalty(chunk("softmax", 0))) == pytest.approx(-0.6215846047, abs=1e-9)
    # on softmax probabilities whatever the head, and the same whatever the target
    assert value(confidence_penalty(chunk("linear", 2))) == pytest.approx(-0.6215846047, abs=1e-9)


def test_label_smoothing_targets():
    # (1 − ε) t + ε / V with ε = 0.1, V = 3: [0.9 + 0.033333, 0.033333, 0.033333]
    smoothed = Targets(torch.tensor([0]), 3, 0.1).dense(torch.float64)
    assert smoothed[0].tolist() == pytest.approx([0.9333333333, 0.0333333333, 0.0333333333], abs=1e-10)
    assert smoothed.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.equal(smoothed, smooth_labels(F.one_hot(torch.tensor([0]), 3).double(), 0.1))
    # CE against them: 0.933333·0.241311 + 0.033333·(1.741311 + 3.241311) = 0.225224 + 0.166087 = 0.391311
    assert value(ce(chunk("softmax", 0, epsilon=0.1))) == pytest.approx(0.3913112967, abs=1e-9)


def test_label_smoothing_objective_equals_torch_cross_entropy_with_label_smoothing():
    generator = torch.Generator().manual_seed(3)
    z = torch.randn(32, 11, generator=generator, dtype=torch.float64) * 2
    index = torch.randint(0, 11, (32,), generator=generator)
    objective = Objective(ObjectiveConfig(loss="ce", regularizer="label-smoothing", epsilon=0.2))
    expected = F.cross_entropy(z, index, label_smoothing=0.2, reduction="none")
    assert torch.allclose(objective.losses(Outputs(z, "softmax"), index), expected, atol=1e-12)


# -- the total --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "head", "target", "expected"),
    [
        # 0.241311 + 10 × 0.621585 (study entropy of p = H(p) when p is the prediction) = 6.457157
        (ObjectiveConfig(loss="ce", regularizer="entropy", weight=10.0), "softmax", 0, 6.4571573435),
        # the study's KL run: MSE 1.75 + 10 × 0.6931456 = 8.681456
        (ObjectiveConfig(loss="mse", regularizer="kl", weight=10.0), "linear", 1, 8.6814556875),
        # the study's entropy run: MSE 0.75 + 100 × 0.3465752 = 35.40752
        (ObjectiveConfig(loss="mse", regularizer="entropy", weight=100.0), "linear", 0, 35.4075202090),
        # 0.241311 + 0.5 × (−0.621585) = −0.069481
        (ObjectiveConfig(loss="ce", regularizer="confidence", weight=0.5), "softmax", 0, -0.0694810057),
        # γ = 2 with no regularizer: the weight multiplies nothing, 0.025473 as above
        (ObjectiveConfig(loss="gamma", loss_param=2.0, regularizer="none", weight=5.0), "softmax", 0, 0.0254728818),
    ],
    ids=["ce+entropy", "mse+kl", "mse+entropy", "ce+confidence", "gamma, no regularizer ignores weight"],
)
def test_total_is_base_plus_weight_times_regularizer(config, head, target, expected):
    objective = Objective(config)
    assert value(objective.losses(outputs(head), torch.tensor([target]))) == pytest.approx(expected, abs=1e-9)
    losses, _ = objective.losses_and_gradient(outputs(head), torch.tensor([target]))
    assert value(losses) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("regularizer", list(REGULARIZERS))
@pytest.mark.parametrize("head", ["linear", "softmax"])
def test_weight_zero_gives_the_base_loss_alone(regularizer, head):
    generator = torch.Generator().manual_seed(5)
    z = torch.randn(16, 7, generator=generator, dtype=torch.float64) * 2
    index = torch.randint(0, 7, (16,), generator=generator)
    objective = Objective(ObjectiveConfig(loss="mse", regularizer=regularizer, weight=0.0))
    assert torch.equal(objective.targets(index, 7).dense(torch.float64), F.one_hot(index, 7).to(torch.float64))
    out = Outputs(z, head)
    assert torch.equal(objective.losses(out, index), mse(rows(z, index, head)))
    assert torch.equal(
        objective.losses_and_gradient(out, index)[1], Objective(ObjectiveConfig(loss="mse")).losses_and_gradient(out, index)[1]
    )


def test_the_registries_are_the_configurable_names():
    assert setting("objective.loss").choices == tuple(BASE_LOSSES) == ("mse", "ce", "alpha", "beta", "gamma")
    assert setting("objective.regularizer").choices == tuple(REGULARIZERS)


def test_a_regularizer_added_to_the_registry_is_configurable_with_nothing_else(monkeypatch):
    with pytest.raises(UserError) as refused:
        build_run_config("x", None, {"objective.regularizer": "neg-entropy"})
    assert f"must be one of {', '.join(REGULARIZERS)}, not 'neg-entropy'" in str(refused.value)
    monkeypatch.setitem(
        REGULARIZERS, "neg-entropy", Regularizer(penalty=Term(confidence_penalty, d_confidence_penalty, "log_probs"))
    )
    assert "neg-entropy" in setting("objective.regularizer").choices
    config = build_run_config("x", None, {"objective.regularizer": "neg-entropy", "objective.weight": 2.0})
    z, index = torch.tensor([[2.0, 0.5, -1.0]], dtype=torch.float64), torch.tensor([0])
    assert value(Objective(config.objective).losses(Outputs(z, "softmax"), index)) == pytest.approx(
        value(Objective(ObjectiveConfig(regularizer="confidence", weight=2.0)).losses(Outputs(z, "softmax"), index))
    )


def test_the_configuration_reads_the_registries_without_loading_torch():
    # the app's first frame and `lm-explorer runs` build configurations; torch takes seconds to load
    probe = (
        "import sys, engine.config.models, engine.config.settings, engine.objective.terms, engine.metric_table, engine.formatting\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_objective_builds_one_hot_targets_from_word_indices():
    objective = Objective(ObjectiveConfig(loss="ce"))
    target = objective.targets(torch.tensor([2, 0]), 5).dense(torch.float32)
    assert target.shape == (2, 5) and target.dtype == torch.float32
    assert target.tolist() == [[0, 0, 1, 0, 0], [1, 0, 0, 0, 0]]
    smoothing = Objective(ObjectiveConfig(loss="ce", regularizer="label-smoothing", epsilon=0.1)).targets(torch.tensor([2]), 5)
    assert smoothing.epsilon == 0.1 and smoothing.dense(torch.float64)[0].tolist() == pytest.approx(
        [0.02, 0.02, 0.92, 0.02, 0.02]
    )


@pytest.mark.parametrize("loss", ["mse", "ce", "alpha", "beta", "gamma"])
@pytest.mark.parametrize("regularizer", ["none", "entropy", "kl", "confidence", "label-smoothing"])
@pytest.mark.parametrize("head", ["linear", "softmax"])
def test_each_closed_form_derivative_is_the_derivative_of_its_value(loss, regularizer, head):
    """On the running example (all 3 targets, outputs spread across the clip range), in float64."""
    param = {"alpha": 0.5, "beta": 3.0, "gamma": 2.0}.get(loss)
    strength = {"epsilon": 0.1} if regularizer == "label-smoothing" else {"weight": 2.0}
    objective = Objective(ObjectiveConfig(loss=loss, loss_param=param, regularizer=regularizer, **strength))
    z = torch.tensor([Z, [0.3, 0.9, 1e-9], [-0.2, 4.0, 0.6]], dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 1, 2])
    objective.losses(Outputs(z, head), index).sum().backward()
    _, gradient = objective.losses_and_gradient(Outputs(z.detach(), head), index)
    assert torch.allclose(gradient, z.grad, rtol=1e-10, atol=1e-12)


def test_hand_values_agree_with_math_module():
    # The literals above, recomputed from the definition with the math module.
    s = sum(math.exp(v) for v in Z)
    p = [math.exp(v) / s for v in Z]
    assert p == pytest.approx(P, abs=1e-15)
    assert -sum(q * math.log(q) for q in p) == pytest.approx(0.6215846047, abs=1e-9)


def spread_chunk(head: str, epsilon: float = 0.0) -> tuple[Chunk, torch.Tensor]:
    """A float32 chunk (64 × 500) whose predictions fall inside and outside the clip range; and its dense ``t``."""
    generator = torch.Generator().manual_seed(5)
    raw = torch.randn(64, 500, generator=generator) * (0.6 if head == "linear" else 5.0) + 0.2
    index = torch.randint(0, 500, (64,), generator=generator)
    one_hot = F.one_hot(index, 500).float()
    return rows(raw, index, head, epsilon), smooth_labels(one_hot, epsilon) if epsilon else one_hot


def close(actual: torch.Tensor, expected: torch.Tensor, relative: float = 1e-6) -> bool:
    return (actual.double() - expected.double()).norm().item() <= relative * expected.double().norm().item()


@pytest.mark.parametrize("head", ["linear", "softmax"])
@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_the_target_rows_and_shared_views_equal_the_dense_definitions(head, epsilon):
    """In float32, to 1e-6 of the float64 definitions on the dense rows ``t`` (smoothed rows too) and the chunk's
    own ``log p``: one-hot targets are built from the word indices and the terms share the metrics' row sums."""
    c, t = spread_chunk(head, epsilon)
    y = c.outputs.prediction
    inside = (y >= EPSILON) & (y <= 1.0)
    assert 0 < inside.float().mean() < 1, "some outputs on either side of the clip range"
    assert torch.equal(c.outputs.inside_clip, inside.float())
    assert torch.equal(c.t, t) and torch.equal(c.clipped_t, clip(t)) and torch.equal(c.log_t, t.log())
    assert close(c.residual, y - t)
    log_p, y, t = c.outputs.log_probs.double(), y.double(), t.double()
    clipped_t = clip(t)
    assert close(kl_penalty(c), (clipped_t * (clipped_t.log() - clip(y).log())).sum(-1))
    assert close(d_kl_penalty(c), torch.where(inside, -clipped_t / clip(y), 0.0))
    assert close(entropy_penalty(c), -(clip(y) * clip(y).log()).sum(-1))
    assert close(d_entropy_penalty(c), torch.where(inside, -(clip(y).log() + 1.0), 0.0))
    assert close(confidence_penalty(c), (log_p.exp() * log_p).sum(-1))
    assert close(d_confidence_penalty(c), log_p.exp() * (log_p + 1.0))
    assert close(ce(c), -(t * log_p).sum(-1))
    assert close(mse(c), (y - t).pow(2).mean(-1))
    for term in [*BASE_LOSSES.values(), *(r.penalty for r in REGULARIZERS.values() if r.penalty is not None)]:
        cached = {id(value) for value in (*vars(c).values(), *vars(c.outputs).values()) if isinstance(value, torch.Tensor)}
        derivative = term.derivative(c, param=2.0) if term.takes_param else term.derivative(c)
        assert id(derivative) not in cached, f"{term.derivative.__name__} returned a view the objective would sum into"
