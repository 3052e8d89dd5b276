"""The LSTM over pre-padded prefixes, with the padding's trajectory run once per batch.

The study's rows are ``[0]·(W−k) + w_1 … w_k``, pre-padded to the corpus's longest prefix W. The
LSTM's state after j padding tokens depends on j alone (every row reads the same padding
embedding from the same zero state). A batch whose longest prefix is ``K`` words starts with
``P = W − K`` columns of padding in every row, so per layer ``l``

    s^l_P = LSTM_l(x^l_1 … x^l_P) from 0, on one row        (x^0_j = the padding embedding)
    outputs^l = LSTM_l(row's columns P+1 … W) from s^l_P, for every row,

which is the full pass over all W columns: the same function of the weights, hence the same
outputs and the same gradients (the padding embedding's and the recurrent weights' through
``s_P`` too), up to rounding. It runs ``P + B·K`` token steps instead of ``B·W``: on the study's W2
(W = 23, batches of 32, K ≈ 11 on average) about half the LSTM's work. Going further (each row
only its own k words, from the state after its own W − k pads: ``Σk + W`` steps) measured slower
on a CPU here: a packed sequence runs step by step outside oneDNN's fused kernel, and length
groups pay a kernel call each.

Dropout between layers (training with ``num_layers > 1``) masks each layer's outputs before the
next reads them. The padding row's ``P`` columns get one mask per column, shared by every row;
the rest of each row its own. That is the full pass with the masks at those ``P`` columns shared
across the batch: every row sees masks drawn as in the full pass (so the expected gradient is the
full pass's), but the rows' padding states are no longer independent draws. With one layer there
is no such mask and nothing differs from the full pass, random draws included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LayerMasks:
    """Dropout masks (scaled by ``1/(1−p)``) on one layer's outputs: ``pads`` (1, P, H), ``words`` (B, W − P, H)."""

    pads: torch.Tensor
    words: torch.Tensor


def leading_pads(tokens: torch.Tensor) -> int:
    """How many leading columns of ``tokens`` (B, W) are padding (0) in every row."""
    used = (tokens != 0).any(0)
    return int(used.int().argmax()) if bool(used.any()) else tokens.shape[1]


def draw_masks(lstm: nn.LSTM, rows: int, pads: int, columns: int, like: torch.Tensor) -> list[LayerMasks]:
    """The between-layer masks of one training pass (dtype and device of ``like``): ``num_layers − 1``
    of them; none in eval or without dropout."""
    p = lstm.dropout
    if not lstm.training or p == 0 or lstm.num_layers == 1:
        return []

    def mask(*shape: int) -> torch.Tensor:
        return like.new_empty(*shape, lstm.hidden_size).bernoulli_(1 - p).div_(1 - p)

    return [LayerMasks(mask(1, pads), mask(rows, columns - pads)) for _ in range(lstm.num_layers - 1)]


def last_hidden(
    lstm: nn.LSTM, embedding: nn.Embedding, tokens: torch.Tensor, pads: int | None = None, masks: list[LayerMasks] | None = None
) -> torch.Tensor:
    """The top layer's output at the last column of ``tokens`` (B, W), (B, H), as the full pass gives it.

    ``pads``: the leading padding columns (:func:`leading_pads` when None; the batching knows it
    without reading the tokens back). ``masks``: the between-layer dropout (:func:`draw_masks`
    when None). ``lstm`` is batch-first and one-directional, with biases.
    """
    rows, width = tokens.shape
    pads = leading_pads(tokens) if pads is None else pads
    pads = min(pads, width - 1)  # at least one column runs per row, so there is an output to return
    pad_inputs = embedding.weight[:1].expand(pads, -1).unsqueeze(0)
    masks = draw_masks(lstm, rows, pads, width, pad_inputs) if masks is None else masks
    word_inputs = embedding(tokens[:, pads:])
    zero = word_inputs.new_zeros(1, rows, lstm.hidden_size)
    for layer in range(lstm.num_layers):
        weights = [getattr(lstm, f"{kind}_l{layer}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        state = [zero, zero]
        if pads:
            pad_inputs, h, c = torch.lstm(
                pad_inputs, [zero[:, :1], zero[:, :1]], weights, True, 1, 0.0, lstm.training, False, True
            )
            state = [h.expand(-1, rows, -1).contiguous(), c.expand(-1, rows, -1).contiguous()]
        word_inputs, _, _ = torch.lstm(word_inputs, state, weights, True, 1, 0.0, lstm.training, False, True)
        if layer < len(masks):
            pad_inputs, word_inputs = pad_inputs * masks[layer].pads, word_inputs * masks[layer].words
    last: torch.Tensor = word_inputs[:, -1]
    return last
