"""The fused head against the plain autograd path: same losses, gradients and metrics, in float32.

The reference builds the whole (n × V) outputs ``z = h Wᵀ + b`` in float64 and lets autograd
differentiate the objective's value (:meth:`engine.objective.total.Objective.losses`, the formulas worked by hand in
``test_objectives.py``); the head takes closed-form derivatives chunk by chunk. The head, in float32,
must agree with it to a relative 1e-5 (in norm) for every objective × regularizer × head, on random features and on
real batches from a real corpus, with chunks small enough that every batch spans several.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from engine.config.models import ObjectiveConfig
from engine.lm.batching import iterate
from engine.lm.corpus import load_corpus
from engine.lm.model import LanguageModel
from engine.objective.head import (
    CPU_CHUNK_ELEMENTS,
    Fusion,
    chunk_rows,
    compile_key,
    head_loss_and_metrics,
    inductor_cache,
    plan_fusion,
    warm_marker,
)
from engine.objective.metrics import MetricTotals, Outputs
from engine.objective.total import Objective
from engine.training.trainer import evaluate, forward, make_split
from tests.conftest import tiny_config

RELATIVE = 1e-5

BASES = [
    ("mse", None),
    ("ce", None),
    ("alpha", 0.5),
    ("alpha", 2.0),
    ("beta", 0.5),
    ("beta", 3.0),
    ("gamma", 0.5),
    ("gamma", 2.0),
    ("alpha", 1.0),
]
REGULARIZERS = [("none", 0.0), ("entropy", 10.0), ("kl", 10.0), ("confidence", 0.5), ("label-smoothing", 0.1)]
HEADS = ["linear", "softmax"]
CASES = [
    (loss, param, regularizer, weight, head)
    for (loss, param), (regularizer, weight), head in itertools.product(BASES, REGULARIZERS, HEADS)
]


def case_id(case) -> str:
    loss, param, regularizer, _weight, head = case
    return f"{loss}{'' if param is None else param}-{regularizer}-{head}"


def objective_for(loss, param, regularizer, weight) -> Objective:
    return Objective(ObjectiveConfig(loss=loss, loss_param=param, regularizer=regularizer, weight=weight))


def reference(hidden, weight, bias, target, objective, head):
    """Mean loss, gradients of (hidden, weight, bias) and metric totals by plain autograd on the whole outputs.

    In float64: the float32 autograd path is itself further than 1e-5 from the exact value in
    places (β = 3 on a real batch: 3e-3 in the gradients, where the closed form is within 1e-6).
    """
    leaves = [t.detach().double().requires_grad_() for t in (hidden, weight, bias)]
    outputs = Outputs(torch.nn.functional.linear(leaves[0], leaves[1], leaves[2]), head)
    losses = objective.losses(outputs, target)
    loss = losses.mean()
    loss.backward()
    totals = MetricTotals()
    totals.add(Outputs(outputs.raw.detach(), head), target, losses.detach())
    return loss.detach(), [leaf.grad for leaf in leaves], totals


def fused(hidden, weight, bias, target, objective, head, rows):
    leaves = [t.detach().clone().requires_grad_() for t in (hidden, weight, bias)]
    totals = MetricTotals()
    loss = head_loss_and_metrics(*leaves, target, objective, head, totals, rows=rows)
    loss.backward()
    return loss.detach(), [leaf.grad for leaf in leaves], totals


def assert_relative(actual: torch.Tensor, expected: torch.Tensor, what: str, relative: float = RELATIVE) -> None:
    gap = (actual.double() - expected.double()).norm().item()
    scale = expected.double().norm().item()
    assert gap <= relative * scale, f"{what}: off by {gap:.3g}, relative {gap / max(scale, 1e-300):.3g}"


def assert_same(reference_result, fused_result, relative: float = RELATIVE) -> None:
    (loss, grads, totals), (fused_loss, fused_grads, fused_totals) = reference_result, fused_result
    assert torch.isfinite(loss)
    assert_relative(fused_loss, loss, "loss", relative)
    for name, grad, fused_grad in zip(("hidden", "weight", "bias"), grads, fused_grads, strict=True):
        assert grad.abs().max() > 0, f"the reference gradient of {name} is zero: the case tests nothing"
        assert_relative(fused_grad, grad, f"gradient of {name}", relative)
    expected, actual = totals.summary(), fused_totals.summary()
    assert fused_totals.count == totals.count
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, rel=relative, abs=1e-6), name


def random_batch(n=53, features=16, vocab=37, seed=0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, features, generator=generator)
    weight = torch.randn(vocab, features, generator=generator) / features**0.5
    bias = torch.randn(vocab, generator=generator) * 0.1
    target = torch.randint(0, vocab, (n,), generator=generator)
    return hidden, weight, bias, target


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_random_batches_match_autograd(case):
    loss, param, regularizer, weight, head = case
    objective = objective_for(loss, param, regularizer, weight)
    hidden, out_weight, bias, target = random_batch()
    # linear-head outputs ~ N(0, 1): some inside the study's clip range [1e-7, 1], some above and below it
    expected = reference(hidden, out_weight, bias, target, objective, head)
    assert_same(expected, fused(hidden, out_weight, bias, target, objective, head, rows=8))


@pytest.fixture(scope="module")
def real_batches(small_corpus):
    """The first training batch of a real corpus under each batching, with a freshly initialised model."""
    batches = {}
    for batching in ("document", "prefix"):
        config = tiny_config(f"head-{batching}", small_corpus, train__batching=batching)
        corpus = load_corpus(config.corpus)
        torch.manual_seed(0)
        model = LanguageModel(len(corpus.vocab), config.model)
        model.eval()  # no dropout: both paths must see the same features
        batch = next(iterate(make_split(config, corpus).train, seed=0))
        with torch.no_grad():
            if batch.last_only:
                hidden, target = model.features(batch.inputs, last_only=True), batch.targets
            else:
                scored = batch.targets > 0
                hidden, target = model.features(batch.inputs, scored=scored), batch.targets[scored]
        batches[batching] = (hidden, model.output.weight.detach() * 8, model.output.bias.detach(), target)
    return batches


@pytest.mark.parametrize("batching", ["document", "prefix"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_real_batches_match_autograd(case, batching, real_batches):
    loss, param, regularizer, weight, head = case
    objective = objective_for(loss, param, regularizer, weight)
    hidden, out_weight, bias, target = real_batches[batching]
    assert hidden.shape[0] > 10 and out_weight.shape[0] > 500
    expected = reference(hidden, out_weight, bias, target, objective, head)
    assert_same(expected, fused(hidden, out_weight, bias, target, objective, head, rows=7))


@pytest.mark.parametrize("head", HEADS)
def test_validation_without_gradients_gives_the_training_loss_and_metrics(head):
    objective = objective_for("mse", None, "kl", 10.0)
    hidden, weight, bias, target = random_batch()
    loss, _, totals = fused(hidden, weight, bias, target, objective, head, rows=8)
    eval_totals = MetricTotals()
    with torch.no_grad():
        eval_loss = head_loss_and_metrics(hidden, weight, bias, target, objective, head, eval_totals, rows=20)
    assert eval_loss.item() == pytest.approx(loss.item(), rel=RELATIVE)
    assert eval_totals.summary() == pytest.approx(totals.summary(), rel=RELATIVE)


def test_one_chunk_and_many_chunks_agree():
    objective = objective_for("ce", None, "confidence", 0.5)
    hidden, weight, bias, target = random_batch(n=64)
    whole = fused(hidden, weight, bias, target, objective, "softmax", rows=64)
    assert_same(whole, fused(hidden, weight, bias, target, objective, "softmax", rows=5))


def test_the_gradient_scales_with_the_incoming_gradient():
    objective = objective_for("mse", None, "entropy", 10.0)
    hidden, weight, bias, target = random_batch()
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    (3.0 * head_loss_and_metrics(*leaves, target, objective, "linear", rows=8)).backward()
    _, grads, _ = fused(hidden, weight, bias, target, objective, "linear", rows=8)
    for leaf, grad in zip(leaves, grads, strict=True):
        assert torch.allclose(leaf.grad, 3.0 * grad)


def test_the_gradients_are_handed_on_once():
    """``backward`` scales the kept gradients in place and hands those very tensors on (an empty ``.grad`` takes
    ``∂W`` without a copy), so a second backward through the same loss is refused."""
    hidden, weight, bias, target = random_batch()
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    handed = []
    leaves[1].register_hook(lambda grad: handed.append(grad.data_ptr()))
    loss = head_loss_and_metrics(*leaves, target, objective_for("mse", None, "kl", 10.0), "linear", rows=8)
    loss.backward(retain_graph=True)
    assert handed == [leaves[1].grad.data_ptr()]
    with pytest.raises(RuntimeError, match="once per forward"):
        loss.backward()


def test_chunks_stay_small_on_a_cpu_and_grow_for_validation():
    cpu = torch.device("cpu")
    assert chunk_rows(11265, cpu) * 11265 <= CPU_CHUNK_ELEMENTS <= 1 << 22  # a few MiB per (rows × V) float32 tensor
    assert chunk_rows(11265, cpu, training=False) >= 4 * chunk_rows(11265, cpu)
    assert chunk_rows(10**7, cpu) == 1  # a vocabulary beyond a chunk still gets one row


def test_the_trainer_forward_is_the_head(small_corpus):
    """The trainer's loss and gradients for a real batch equal the autograd reference on the model's full outputs."""
    config = tiny_config(
        "head-trainer",
        small_corpus,
        model__head="linear",
        objective__loss="mse",
        objective__regularizer="kl",
        objective__weight=10.0,
        model__dropout=0.0,
    )
    corpus = load_corpus(config.corpus)
    torch.manual_seed(0)
    model = LanguageModel(len(corpus.vocab), config.model)
    objective = Objective(config.objective)
    split = make_split(config, corpus)
    batch = next(iterate(split.train, seed=0))
    totals = MetricTotals()
    forward(model, objective, batch, totals).backward()
    fused_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    scored = batch.targets > 0
    raw = model(batch.inputs, scored=scored)
    objective.losses(Outputs(raw, "linear"), batch.targets[scored]).mean().backward()
    for name, p in model.named_parameters():
        assert_relative(fused_grads[name], p.grad, name)
    assert totals.count == int(scored.sum())
    validation = evaluate(model, split.val, objective, torch.device("cpu"))
    assert validation.count == split.val.pairs


def test_compiling_is_on_for_cuda_and_asked_for_on_a_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not plan_fusion(cpu).compiled and plan_fusion(cpu).description.startswith("plain torch")
    assert not plan_fusion(cuda, "off").compiled
    assert plan_fusion(cuda).compiled and "Triton" in plan_fusion(cuda).description
    assert plan_fusion(cpu, "on").compiled and "C++" in plan_fusion(cpu, "on").description


def test_auto_compiles_on_a_cpu_once_the_cache_holds_that_chunk(tmp_path, monkeypatch):
    """The warm marker is per objective and head, in the cache folder that Inductor is pointed at."""
    cpu = torch.device("cpu")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    key = compile_key(objective_for("mse", None, "kl", 10.0), "linear", cpu)
    assert key != compile_key(objective_for("mse", None, "kl", 1.0), "linear", cpu)
    assert not plan_fusion(cpu, "auto", key).compiled
    warm_marker(key).parent.mkdir(parents=True)
    warm_marker(key).touch()
    assert plan_fusion(cpu, "auto", key).compiled and "warm" in plan_fusion(cpu, "auto", key).description
    assert not plan_fusion(cpu, "off", key).compiled
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert inductor_cache() == tmp_path / "xdg" / "lm-explorer" / "inductor"


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
def test_the_compiled_chunk_gives_the_plain_chunks_numbers(head):
    """torch.compile's fused chunk (tens of seconds to compile on a small CPU) against the plain one."""
    objective = objective_for("mse", None, "kl", 10.0)
    fusion = Fusion(True, "torch.compile")
    fusion.warm_up(objective, head, 37, torch.device("cpu"))
    assert fusion.compiled, fusion.description
    hidden, weight, bias, target = random_batch()
    plain = fused(hidden, weight, bias, target, objective, head, rows=8)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    totals = MetricTotals()
    loss = head_loss_and_metrics(*leaves, target, objective, head, totals, rows=8, fusion=fusion)
    loss.backward()
    assert_same(plain, (loss.detach(), [leaf.grad for leaf in leaves], totals))
