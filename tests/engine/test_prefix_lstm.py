"""The padding-trajectory LSTM (engine/lm/prefix_lstm.py) against the full pass over every column:
outputs and every gradient, one and two layers, with and without dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.config.models import ModelConfig
from engine.lm.batching import PrefixBatches, iterate
from engine.lm.corpus import load_corpus
from engine.lm.model import LanguageModel
from engine.lm.prefix_lstm import LayerMasks, draw_masks, last_hidden, leading_pads
from tests.conftest import tiny_config

VOCAB, WIDTH, ROWS, HIDDEN = 40, 9, 7, 12


def prefix_rows(generator: torch.Generator, lengths: list[int]) -> torch.Tensor:
    """Rows ``[0]·(W−k) + k random words`` for each k of ``lengths``."""
    tokens = torch.zeros(len(lengths), WIDTH, dtype=torch.long)
    for row, k in enumerate(lengths):
        tokens[row, WIDTH - k :] = torch.randint(1, VOCAB, (k,), generator=generator)
    return tokens


def model(layers: int, dropout: float, dtype: torch.dtype = torch.float64) -> LanguageModel:
    torch.manual_seed(layers)
    config = ModelConfig(embedding_dim=6, hidden_size=HIDDEN, num_layers=layers, dropout=dropout, head="softmax")
    return LanguageModel(VOCAB, config).to(dtype)


def gradients(net: LanguageModel, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The cross-entropy of the output layer over ``features`` and ∂loss/∂θ for every parameter."""
    net.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(net.output(features), targets)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}


def assert_same(full: tuple[torch.Tensor, dict[str, torch.Tensor]], fast: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> None:
    torch.testing.assert_close(fast[0], full[0])
    assert fast[1].keys() == full[1].keys()
    for name, grad in full[1].items():
        torch.testing.assert_close(fast[1][name], grad, msg=lambda m, name=name: f"∂loss/∂{name}: {m}")


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("lengths", [[1, 3, 2, 4, 1, 2, 3], [9, 1, 5, 2, 8, 3, 1], [1] * ROWS])
def test_matches_the_full_pass_without_dropout(layers, lengths):
    """Eval mode (no dropout draws): the loss and every parameter's gradient (the padding
    embedding's and the recurrent weights' included) equal the full pass's, in float64."""
    generator = torch.Generator().manual_seed(sum(lengths))
    tokens, targets = prefix_rows(generator, lengths), torch.randint(1, VOCAB, (ROWS,), generator=generator)
    net = model(layers, dropout=0.4).eval()
    full = gradients(net, net.dropout(net.lstm(net.embedding(tokens))[0][:, -1]), targets)
    fast = gradients(net, net.features(tokens, last_only=True), targets)
    assert_same(full, fast)
    assert full[1]["embedding.weight"][0].abs().sum() > 0  # the padding's embedding is trained through the shared trajectory


def test_one_layer_in_training_draws_the_same_output_dropout():
    """One layer, training, output dropout 0.5: no mask inside the LSTM, so under the same seed
    the output dropout's draw, the loss and every gradient are the full pass's (float32, as trained)."""
    generator = torch.Generator().manual_seed(3)
    tokens, targets = prefix_rows(generator, [2, 5, 1, 3, 2, 4, 1]), torch.randint(1, VOCAB, (ROWS,), generator=generator)
    net = model(1, dropout=0.5, dtype=torch.float32).train()
    torch.manual_seed(11)
    full = gradients(net, net.dropout(net.lstm(net.embedding(tokens))[0][:, -1]), targets)
    torch.manual_seed(11)
    fast = gradients(net, net.features(tokens, last_only=True), targets)
    assert_same(full, fast)


def full_pass_with_masks(net: LanguageModel, tokens: torch.Tensor, pads: int, masks: list[LayerMasks]) -> torch.Tensor:
    """The full pass over every column, layer by layer, each layer's outputs times its mask: the
    shared padding mask at the first ``pads`` columns of every row, each row's own after them."""
    inputs = net.embedding(tokens)
    for layer in range(net.config.num_layers):
        single = nn.LSTM(inputs.shape[-1], HIDDEN, batch_first=True).to(torch.float64)
        weights = {
            f"{kind}_l0": getattr(net.lstm, f"{kind}_l{layer}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
        inputs, _ = torch.func.functional_call(single, weights, (inputs,))
        if layer < len(masks):
            mask = torch.cat([masks[layer].pads.expand(tokens.shape[0], -1, -1), masks[layer].words], dim=1)
            inputs = inputs * mask
    return inputs[:, -1]


def test_two_layers_with_dropout_between_them_are_the_full_pass_with_shared_padding_masks():
    """Training with dropout between layers: with the same masks, the trajectory is the full pass
    whose masks at the leading padding columns are shared by every row (the module docstring says
    why that is the exact statement), for the loss and every gradient."""
    generator = torch.Generator().manual_seed(5)
    lengths = [2, 5, 1, 3, 2, 4, 1]
    tokens, targets = prefix_rows(generator, lengths), torch.randint(1, VOCAB, (ROWS,), generator=generator)
    net = model(2, dropout=0.5).train()
    pads = WIDTH - max(lengths)
    torch.manual_seed(2)
    masks = draw_masks(net.lstm, ROWS, pads, WIDTH, net.embedding.weight)
    assert len(masks) == 1 and masks[0].pads.shape == (1, pads, HIDDEN) and masks[0].words.shape == (ROWS, WIDTH - pads, HIDDEN)
    net.dropout.p = 0.0  # only the LSTM's own masks are compared here
    full = gradients(net, full_pass_with_masks(net, tokens, pads, masks), targets)
    fast = gradients(net, last_hidden(net.lstm, net.embedding, tokens, pads, masks), targets)
    assert_same(full, fast)


def test_masks_drop_at_the_configured_rate():
    net = model(3, dropout=0.3).train()
    torch.manual_seed(0)
    masks = draw_masks(net.lstm, 64, 20, 40, net.embedding.weight)
    assert len(masks) == 2
    values = torch.cat([torch.cat([m.pads.flatten(), m.words.flatten()]) for m in masks])
    kept = values.unique().tolist()
    assert len(kept) == 2 and kept[0] == 0.0 and kept[1] == pytest.approx(1 / 0.7)
    assert (values == 0).double().mean().item() == pytest.approx(0.3, abs=0.02)
    assert draw_masks(net.lstm.eval(), 64, 20, 40, net.embedding.weight) == []


def test_a_prefix_batch_knows_its_leading_padding(tiny_corpus):
    """The batching's count of padding columns shared by every row is the one read from the tokens."""
    config = tiny_config("pads", tiny_corpus, preset="paper")
    corpus = load_corpus(config.corpus)
    batches = PrefixBatches.from_documents(corpus, list(range(len(corpus.documents))), 8, corpus.stats.longest - 1)
    seen = [(batch.pads, leading_pads(batch.inputs)) for batch in iterate(batches, seed=1)]
    assert all(given == read for given, read in seen)
    assert any(given > 0 for given, _ in seen)
