"""How big a model is, without building it (torch-free, so reading a run's record needs no torch): parameter counts and the
checks that refuse a model or input that cannot fit."""

from __future__ import annotations

import os

from engine.config.models import ModelConfig
from engine.errors import UserError

GATES = {"lstm": 4, "gru": 3}


def transformer_parameters(config: ModelConfig) -> int:
    """Weights of :class:`Transformer`: positions ``P·C``; per block ``4C² + 4C`` (attention), ``2CF + F + C`` (feed-forward),
    ``4C`` (two LayerNorms); the final LayerNorm ``2C``."""
    width, feed = config.embedding_dim, config.hidden_size
    block = 4 * width * width + 4 * width + 2 * width * feed + feed + width + 4 * width
    return config.context * width + config.num_layers * block + 2 * width


def parameter_count(vocab_size: int, config: ModelConfig) -> int:
    """Weights of :class:`LanguageModel`: embedding ``V·E``; LSTM ``Σ_l 4H(in_l + H + 2)``, GRU the same with 3 gates, or
    :func:`transformer_parameters`; output ``V·F + V`` (``F`` its input width; ``V`` alone when tied)."""
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


def state_count(vocab_size: int, config: ModelConfig) -> int:
    """Numbers in the model's ``state_dict`` (what its tensor file holds): :func:`parameter_count`, plus the output
    layer's ``V·F`` weights again when tied (the state names the shared tensor twice, and the file keeps both)."""
    tied = vocab_size * config.feature_size if config.output_embedding == "tied" else 0
    return parameter_count(vocab_size, config) + tied


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
