"""The word-level language model: Embedding → LSTM, GRU or Transformer → Dropout → Linear over the vocabulary."""

from __future__ import annotations

import os

import torch
from torch import nn

from engine.config.models import ModelConfig
from engine.errors import UserError
from engine.lm.prefix_lstm import last_hidden
from engine.lm.transformer import Transformer, gpt2_init_, transformer_parameters

KERAS_EMBEDDING_RANGE = 0.05
RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU}
GATES = {"lstm": 4, "gru": 3}


class LanguageModel(nn.Module):
    """Scores every vocabulary word as the next word after each position of a token sequence.

    The network over the sequence is ``config.arch``'s, in the attribute of that name (``lstm``,
    ``gru`` or ``transformer``, so a checkpoint's tensor names say which). The output is the raw
    linear layer ``z``; what counts as the prediction (``z`` itself or ``softmax(z)``) is the
    config's ``head`` and is applied by :mod:`engine.objective.metrics`. With a tied output
    embedding, ``output.weight`` is ``embedding.weight`` (one parameter).
    """

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim)
        if config.arch == "transformer":
            self.transformer = Transformer(config)
        else:
            recurrent = RECURRENT[config.arch](
                config.embedding_dim,
                config.hidden_size,
                num_layers=config.num_layers,
                batch_first=True,
                dropout=config.dropout if config.num_layers > 1 else 0.0,
            )
            self.add_module(config.arch, recurrent)
        self.dropout = nn.Dropout(0.0 if config.arch == "transformer" else config.dropout)
        self.output = nn.Linear(config.feature_size, vocab_size)
        if config.output_embedding == "tied":
            self.output.weight = self.embedding.weight
        if config.arch == "transformer":
            gpt2_init_(self.transformer, self.embedding, self.output)
        elif config.init == "keras":
            keras_init_(self)

    @property
    def recurrent(self) -> nn.LSTM | nn.GRU:
        """The LSTM or GRU (an AttributeError for the transformer)."""
        module = getattr(self, self.config.arch)
        if not isinstance(module, (nn.LSTM, nn.GRU)):
            raise AttributeError(f"a {self.config.arch} has no recurrent layer")
        return module

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

        ``last_only`` inputs are the left-padded ones (prefix batching, generation), which the
        transformer masks (:mod:`engine.lm.transformer`); the others are padded on the right.
        Training and validation hand these to the fused head (:mod:`engine.objective.head`) with
        ``output.weight`` and ``output.bias``, so the (n, vocab) outputs are never built whole.
        With ``last_only`` an LSTM runs the columns of padding that lead every row once, on one row
        (:mod:`engine.lm.prefix_lstm`; ``pads`` their count, when the caller knows it).
        """
        if last_only and self.config.arch == "lstm":
            lstm = self.recurrent
            assert isinstance(lstm, nn.LSTM)
            hidden = last_hidden(lstm, self.embedding, tokens, pads)
        else:
            embedded = self.embedding(tokens)
            if self.config.arch == "transformer":
                hidden = self.transformer(embedded, tokens, left_padded=last_only)
            else:
                hidden, _ = self.recurrent(embedded)
            if last_only:
                hidden = hidden[:, -1]
            elif scored is not None:
                hidden = hidden[scored]
        dropped: torch.Tensor = self.dropout(hidden)
        return dropped


@torch.no_grad()
def keras_init_(model: LanguageModel) -> None:
    """Keras 2 defaults, which the study had and PyTorch does not share.

    Embeddings uniform in ±0.05; Glorot-uniform input and output kernels; orthogonal recurrent
    kernels; zero biases, except the LSTM forget gate's at 1 (``unit_forget_bias``). PyTorch's
    LSTM has two bias vectors where Keras has one: ``bias_hh`` stays 0 so their sum is Keras's.
    Gate order is the same in both (input, forget, cell, output). A GRU gets the same kernels and
    zero biases (Keras's GRU has no forget gate). A tied output layer keeps the embedding's values.
    """
    nn.init.uniform_(model.embedding.weight, -KERAS_EMBEDDING_RANGE, KERAS_EMBEDDING_RANGE)
    hidden = model.config.hidden_size
    lstm = model.config.arch == "lstm"
    for name, parameter in model.recurrent.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(parameter)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(parameter)
        else:
            nn.init.zeros_(parameter)
            if lstm and name.startswith("bias_ih"):
                parameter[hidden : 2 * hidden] = 1.0
    if model.config.output_embedding == "untied":
        nn.init.xavier_uniform_(model.output.weight)
    nn.init.zeros_(model.output.bias)


def parameter_count(vocab_size: int, config: ModelConfig) -> int:
    """Weights of :class:`LanguageModel`: embedding ``V·E``; LSTM ``Σ_l 4H(in_l + H + 2)``, GRU the same with 3 gates, or
    :func:`~engine.lm.transformer.transformer_parameters`; output ``V·F + V`` (``F`` its input width; ``V`` alone when tied)."""
    if config.arch == "transformer":
        body = transformer_parameters(config)
    else:
        body = sum(
            GATES[config.arch]
            * config.hidden_size
            * ((config.embedding_dim if layer == 0 else config.hidden_size) + config.hidden_size + 2)
            for layer in range(config.num_layers)
        )
    output = vocab_size * (config.output_embedding == "untied") * config.feature_size + vocab_size
    return vocab_size * config.embedding_dim + body + output


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
    layers = config.num_layers
    if config.arch == "transformer":
        width, feed = config.embedding_dim, config.hidden_size
        shares = {
            "the vocabulary size": vocab_size * 2 * width,
            "model.hidden_size": 2 * width * feed * layers,
            "model.embedding_dim": vocab_size * 2 * width + 4 * width * width * layers,
            "model.num_layers": (4 * width * width + 2 * width * feed) * (layers - 1),
            "model.context": config.context * width,
        }
    else:
        shares = {
            "the vocabulary size": vocab_size * (config.embedding_dim + config.hidden_size),
            "model.hidden_size": 4 * config.hidden_size * config.hidden_size * layers + vocab_size * config.hidden_size,
            "model.embedding_dim": vocab_size * config.embedding_dim,
            "model.num_layers": 8 * config.hidden_size * config.hidden_size * (layers - 1),
        }
    largest = max(shares, key=lambda name: shares[name])
    raise UserError(
        f"{what} needs about {needed / 2**30:.1f} GiB to train (vocabulary {vocab_size:,}, embedding_dim {config.embedding_dim}, "
        f"hidden_size {config.hidden_size}, num_layers {config.num_layers}), more than this machine's {available / 2**30:.1f} GiB; "
        f"lower {largest}."
    )


def check_inputs_fit(config: ModelConfig, longest_input: int, what: str) -> None:
    """Refuse a transformer whose learned positions (``context``) are fewer than the longest input it would train on."""
    if config.arch == "transformer" and longest_input > config.context:
        raise UserError(
            f"{what} trains on inputs of up to {longest_input} words, more than the transformer's {config.context} positions; "
            f"give --context {longest_input} or more."
        )
