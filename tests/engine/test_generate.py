"""Greedy and sampled continuations, checked against the model's own outputs and hand-set ones."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from engine.errors import UserError
from engine.generate import Strategy, generate, seed_tokens
from engine.lm.corpus import PAD, UNK, clean
from engine.runs.checkpoint import load_run

SEED_TEXT = "The government said"


@pytest.fixture
def base(saved_runs):
    """A fresh in-memory copy of the softmax run (vocabulary with <unk>); changing it leaves the disk alone."""
    return load_run(saved_runs, "base")


@pytest.fixture
def linear(saved_runs):
    """A fresh in-memory copy of the linear-head (study) run, whose vocabulary has no <unk>."""
    return load_run(saved_runs, "linear")


def set_raw_outputs(run, values: dict[int, float], rest: float) -> torch.Tensor:
    """Make the model's raw outputs the same known vector whatever the input (dropout is off in eval)."""
    raw = torch.full((len(run.record.vocab),), rest)
    for index, value in values.items():
        raw[index] = value
    with torch.no_grad():
        run.model.output.weight.zero_()
        run.model.output.bias.copy_(raw)
    return raw


def draws(run, strategy_for_seed, seeds: int, words: int) -> Counter:
    counts: Counter = Counter()
    for seed in range(seeds):
        counts.update(generate(run, SEED_TEXT, words, strategy_for_seed(seed)).words)
    return counts


# -- greedy ---------------------------------------------------------------------------------------


def test_greedy_gives_ten_vocabulary_words_by_default(base):
    continuation = generate(base, SEED_TEXT)
    vocab = base.record.vocab
    assert len(continuation.steps) == 10 and len(continuation.words) == 10
    assert all(word in vocab and word not in (PAD, UNK) for word in continuation.words)
    assert continuation.text == " ".join(continuation.words)
    assert continuation.strategy == "greedy" and continuation.unknown_words == []
    assert continuation.entropy_definition == "softmax"
    assert generate(base, SEED_TEXT).words == continuation.words


def test_greedy_is_the_argmax_of_the_models_outputs_step_by_step(base):
    vocab = base.record.vocab
    tokens = [vocab.index(word) for word in clean(SEED_TEXT)]
    continuation = generate(base, SEED_TEXT, words=6)
    for step in continuation.steps:
        with torch.no_grad():
            raw = base.model(torch.tensor([tokens]), last_only=True)[0]
        log_p = torch.log_softmax(raw, -1)
        assert step.entropy == pytest.approx(-(log_p.exp() * log_p).sum().item(), rel=1e-5)
        raw[[0, 1]] = float("-inf")  # <pad> and <unk> are never candidates
        probabilities = torch.softmax(raw, -1)
        choice = int(raw.argmax())
        assert step.word == vocab[choice]
        assert step.probability == pytest.approx(probabilities[choice].item(), rel=1e-5)
        top = torch.topk(probabilities, 3)
        assert [a.word for a in step.alternatives] == [vocab[i] for i in top.indices.tolist()]
        assert [a.probability for a in step.alternatives] == pytest.approx(top.values.tolist(), rel=1e-5)
        assert step.alternatives[0].word == step.word
        tokens.append(choice)


def test_padding_and_unk_are_never_emitted_even_when_they_score_highest(base):
    with torch.no_grad():
        base.model.output.bias[0] += 1000.0
        base.model.output.bias[1] += 1000.0
    for strategy in (Strategy(), Strategy(top_k=5, seed=1)):
        continuation = generate(base, SEED_TEXT, words=5, strategy=strategy)
        assert not {PAD, UNK} & set(continuation.words)
        assert all(a.word not in (PAD, UNK) for step in continuation.steps for a in step.alternatives)


# -- seeds --------------------------------------------------------------------------------------


def test_unknown_seed_words_are_reported_and_read_as_unk(base):
    tokens, unknown = seed_tokens(base, "Zzqx the qqqy!")
    the = base.record.vocab.index("the")
    assert tokens == [1, the, 1] and unknown == ["zzqx", "qqqy"]
    continuation = generate(base, "Zzqx the qqqy!", words=3)
    assert continuation.unknown_words == ["zzqx", "qqqy"] and len(continuation.words) == 3


def test_unknown_seed_words_are_left_out_when_there_is_no_unk(linear):
    assert UNK not in linear.record.vocab
    tokens, unknown = seed_tokens(linear, "zzqx the")
    assert tokens == [linear.record.vocab.index("the")] and unknown == ["zzqx"]


@pytest.mark.parametrize("seed", ["zzqx qqqy", "!!!", ""])
def test_a_seed_with_no_known_word_is_refused(base, seed):
    with pytest.raises(UserError, match=rf"^Seed text {seed!r} has no word that run 'base' knows; use words from its corpus\.$"):
        generate(base, seed)


def test_bad_generation_settings(base):
    with pytest.raises(UserError, match="--words 0 is not allowed"):
        generate(base, SEED_TEXT, words=0)
    with pytest.raises(UserError, match="--top-k 0 is not allowed"):
        Strategy(top_k=0)
    for temperature in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(UserError, match=r"--temperature .* is not allowed"):
            Strategy(top_k=3, temperature=temperature)


# -- sampling -----------------------------------------------------------------------------------


def test_top_k_sampling_is_reproducible_with_a_seed(base):
    first = generate(base, SEED_TEXT, strategy=Strategy(top_k=5, seed=3))
    assert generate(base, SEED_TEXT, strategy=Strategy(top_k=5, seed=3)).words == first.words
    others = {tuple(generate(base, SEED_TEXT, strategy=Strategy(top_k=5, seed=seed)).words) for seed in range(4)}
    assert len(others) > 1
    assert first.strategy == "top-5 sampling (T=1, seed 3)"


def test_top_k_picks_only_among_the_k_highest_outputs(base):
    # softmax head: words 10, 11, 12 score highest among the allowed, 13 is fourth, everything else far below
    set_raw_outputs(base, {0: 20.0, 1: 20.0, 10: 2.0, 11: 1.9, 12: 1.8, 13: 1.7}, rest=-10.0)
    vocab = base.record.vocab
    counts = draws(base, lambda seed: Strategy(top_k=3, seed=seed), seeds=10, words=10)
    assert set(counts) == {vocab[10], vocab[11], vocab[12]}
    step = generate(base, SEED_TEXT, words=1).steps[0]
    assert step.word == vocab[10]
    assert [a.word for a in step.alternatives] == [vocab[10], vocab[11], vocab[12]]
    # p = softmax over the allowed words: e^2 / (e^2 + e^1.9 + e^1.8 + e^1.7 + (V − 6) e^−10)
    total = math.exp(2.0) + math.exp(1.9) + math.exp(1.8) + math.exp(1.7) + (len(vocab) - 6) * math.exp(-10.0)
    assert step.probability == pytest.approx(math.exp(2.0) / total, rel=1e-5)


def test_linear_head_samples_by_raw_outputs_clipped_at_zero(linear):
    # raw outputs: A = 3, B = 1, C = −2 are the top 3 allowed (<pad>, <unk>-free vocabulary: <pad> at 10 is banned)
    # weights max(z, 0) = 3, 1, 0 → P(A) = 3/4, P(B) = 1/4, P(C) = 0
    a, b, c = 10, 11, 12
    set_raw_outputs(linear, {0: 10.0, a: 3.0, b: 1.0, c: -2.0}, rest=-5.0)
    vocab = linear.record.vocab
    counts = draws(linear, lambda seed: Strategy(top_k=3, seed=seed), seeds=20, words=50)
    assert sum(counts.values()) == 1000
    assert set(counts) == {vocab[a], vocab[b]}  # C's weight is 0: never drawn
    assert counts[vocab[a]] / 1000 == pytest.approx(0.75, abs=0.05)

    step = generate(linear, SEED_TEXT, words=1, strategy=Strategy(top_k=3, seed=0)).steps[0]
    assert [(alt.word, alt.probability) for alt in step.alternatives[:2]] == [
        (vocab[a], pytest.approx(0.75, abs=1e-6)),
        (vocab[b], pytest.approx(0.25, abs=1e-6)),
    ]
    assert step.alternatives[2].probability == 0.0
    # study entropy of the raw outputs: <pad> (10 → 1), A (3 → 1), B (1 → 1) add 0; the other V − 3 words
    # (C and the rest, all clipped to 1e-7) add 1e-7 · ln(1e7) = 1.6118e-6 each
    assert step.entropy == pytest.approx((len(vocab) - 3) * 1e-7 * math.log(1e7), rel=1e-4)
    assert generate(linear, SEED_TEXT, words=1).entropy_definition == "study"
    assert generate(linear, SEED_TEXT, words=2).words == [vocab[a], vocab[a]]  # greedy: the largest raw output


def test_linear_head_temperature_sharpens_the_clipped_weights(linear):
    # w = max(z, 0)^(1/T): at T = 0.5, 3² : 1² = 9 : 1 → P(A) = 0.9
    a, b = 10, 11
    set_raw_outputs(linear, {0: 10.0, a: 3.0, b: 1.0}, rest=-5.0)
    vocab = linear.record.vocab
    counts = draws(linear, lambda seed: Strategy(top_k=3, temperature=0.5, seed=seed), seeds=10, words=50)
    assert set(counts) == {vocab[a], vocab[b]}
    assert counts[vocab[a]] / 500 == pytest.approx(0.9, abs=0.05)


def test_linear_head_with_no_positive_candidate_samples_them_evenly(linear):
    a, b, c = 10, 11, 12
    set_raw_outputs(linear, {0: 10.0, a: -1.0, b: -2.0, c: -3.0}, rest=-5.0)
    vocab = linear.record.vocab
    counts = draws(linear, lambda seed: Strategy(top_k=3, seed=seed), seeds=6, words=50)
    assert set(counts) == {vocab[a], vocab[b], vocab[c]}
    assert all(count / 300 == pytest.approx(1 / 3, abs=0.08) for count in counts.values())
    # every allowed word has weight 0: the reported distribution is uniform over the V − 1 allowed words
    step = generate(linear, SEED_TEXT, words=1).steps[0]
    assert step.probability == pytest.approx(1 / (len(vocab) - 1), rel=1e-6)
