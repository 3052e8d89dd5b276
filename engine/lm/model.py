"""The word-level LSTM language model: Embedding → LSTM → Dropout → Linear over the vocabulary."""

from __future__ import annotations

import os

import torch
from torch import nn

from engine.config.models import ModelConfig
from engine.errors import UserError
from engine.lm.prefix_lstm import last_hidden

KERAS_EMBEDDING_RANGE = 0.05


class LanguageModel(nn.Module):
    """Scores every vocabulary word as the next word after each position of a token sequence.

    The output is the raw linear layer ``z``; what counts as the prediction (``z`` itself or
    ``softmax(z)``) is the config's ``head`` and is applied by :mod:`engine.objective.metrics`.
    """

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_size, vocab_size)
        if config.init == "keras":
            keras_init_(self)

    def forward(self, tokens: torch.Tensor, last_only: bool = False, scored: torch.Tensor | None = None) -> torch.Tensor:
        """Raw outputs over the vocabulary for the positions that are scored.

        ``tokens`` (batch, time). Returns (batch, vocab) for the last position if ``last_only``;
        (n, vocab) for the n positions where the boolean mask ``scored`` (batch, time) is set;
        else (batch, time, vocab). The output layer runs only on the positions returned.
        """
        outputs: torch.Tensor = self.output(self.features(tokens, last_only, scored))
        return outputs

    def features(
        self, tokens: torch.Tensor, last_only: bool = False, scored: torch.Tensor | None = None, pads: int | None = None
    ) -> torch.Tensor:
        """What the output layer reads at the scored positions (after dropout), chosen as in :meth:`forward`.

        Training and validation hand these to the fused head (:mod:`engine.objective.head`) with
        ``output.weight`` and ``output.bias``, so the (n, vocab) outputs are never built whole.
        With ``last_only`` the columns of padding that lead every row run once, on one row
        (:mod:`engine.lm.prefix_lstm`; ``pads`` their count, when the caller knows it).
        """
        if last_only:
            hidden = last_hidden(self.lstm, self.embedding, tokens, pads)
        else:
            hidden, _ = self.lstm(self.embedding(tokens))
            if scored is not None:
                hidden = hidden[scored]
        dropped: torch.Tensor = self.dropout(hidden)
        return dropped


@torch.no_grad()
def keras_init_(model: LanguageModel) -> None:
    """Keras 2 defaults, which the study had and PyTorch does not share.

    Embeddings uniform in ±0.05; Glorot-uniform input and output kernels; orthogonal recurrent
    kernels; zero biases, except the LSTM forget gate's at 1 (``unit_forget_bias``). PyTorch's
    LSTM has two bias vectors where Keras has one: ``bias_hh`` stays 0 so their sum is Keras's.
    Gate order is the same in both (input, forget, cell, output).
    """
    nn.init.uniform_(model.embedding.weight, -KERAS_EMBEDDING_RANGE, KERAS_EMBEDDING_RANGE)
    hidden = model.config.hidden_size
    for name, parameter in model.lstm.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(parameter)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(parameter)
        else:
            nn.init.zeros_(parameter)
            if name.startswith("bias_ih"):
                parameter[hidden : 2 * hidden] = 1.0
    nn.init.xavier_uniform_(model.output.weight)
    nn.init.zeros_(model.output.bias)


def parameter_count(vocab_size: int, config: ModelConfig) -> int:
    """Weights of :class:`LanguageModel`: embedding ``V·E``, LSTM ``Σ_l 4H(in_l + H + 2)``, output ``V·H + V``."""
    lstm = sum(
        4 * config.hidden_size * ((config.embedding_dim if layer == 0 else config.hidden_size) + config.hidden_size + 2)
        for layer in range(config.num_layers)
    )
    return vocab_size * config.embedding_dim + lstm + vocab_size * config.hidden_size + vocab_size


TRAINING_COPIES = 4  # weights, gradients and Adam's two moments, float32 each


def check_model_fits(vocab_size: int, config: ModelConfig, what: str) -> None:
    """Refuse, before allocating anything, a model whose training state exceeds this machine's memory.

    The estimate is ``4 bytes × parameters × 4`` (weights, gradients, Adam's two moments); the
    sentence names the setting that contributes most.
    """
    needed = 4 * TRAINING_COPIES * parameter_count(vocab_size, config)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed <= available:
        return
    shares = {
        "the vocabulary size": vocab_size * (config.embedding_dim + config.hidden_size),
        "model.hidden_size": 4 * config.hidden_size * config.hidden_size * config.num_layers + vocab_size * config.hidden_size,
        "model.embedding_dim": vocab_size * config.embedding_dim,
        "model.num_layers": 8 * config.hidden_size * config.hidden_size * (config.num_layers - 1),
    }
    largest = max(shares, key=lambda name: shares[name])
    raise UserError(
        f"{what} needs about {needed / 2**30:.1f} GiB to train (vocabulary {vocab_size:,}, embedding_dim {config.embedding_dim}, "
        f"hidden_size {config.hidden_size}, num_layers {config.num_layers}), more than this machine's {available / 2**30:.1f} GiB; "
        f"lower {largest}."
    )
