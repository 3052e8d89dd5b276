"""A small decoder-only Transformer over word vectors, in the shape of karpathy/nanoGPT's ``model.py``.

``x_0 = drop(e(w_t) + P[pos_t])``; each block is pre-LayerNorm,
``x ← x + drop(W_o · Attn(LN(x)))`` then ``x ← x + drop(W_2 · gelu(W_1 · LN(x)))``, and the output
layer reads ``LN(x_L)``. ``Attn`` is causal multi-head ``softmax(q kᵀ / √d_head) v``
(:func:`torch.nn.functional.scaled_dot_product_attention`). Widths: residual ``embedding_dim``,
feed-forward ``hidden_size``, ``num_layers`` blocks, ``heads`` heads, ``context`` learned positions.

**Padding** (token 0, :data:`engine.lm.corpus.PAD`). Document batching pads on the right: a real
position's causal window holds only real tokens, so plain ``is_causal`` attention is exact and
the padded positions after a document are never scored. Prefix batching (and generation of a
prefix-trained run) pads on the left, so with ``left_padded`` each row's positions count from its
first real token (``pos = cumsum(real) − 1``) and a query attends to the real keys at or before
it only; a padded query attends to itself alone (so no row of the softmax is empty) and is never
scored. A prefix's outputs therefore do not depend on how much padding precedes it: its last
position scores exactly as the same position of the whole document (tested).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from engine.config.models import ModelConfig

GPT2_STD = 0.02


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` sees positions ``≤ t`` (and, with a mask, only the allowed ones)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.attention_dropout = dropout
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """``x`` (B, T, C); ``allowed`` (B, 1, T, T) True where a query may attend to a key, or None for plain causal."""
        batch, steps, width = x.shape
        q, k, v = (
            part.view(batch, steps, self.heads, width // self.heads).transpose(1, 2) for part in self.qkv(x).split(width, 2)
        )
        p = self.attention_dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p, is_causal=allowed is None)
        projected: torch.Tensor = self.residual_dropout(self.proj(attended.transpose(1, 2).reshape(batch, steps, width)))
        return projected


class Block(nn.Module):
    """Pre-LayerNorm: attention, then a GELU feed-forward, each added to the residual stream."""

    def __init__(self, width: int, feed_forward: int, heads: int, dropout: float):
        super().__init__()
        self.norm_1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.norm_2 = nn.LayerNorm(width)
        self.expand = nn.Linear(width, feed_forward)
        self.contract = nn.Linear(feed_forward, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attention(self.norm_1(x), allowed)
        out: torch.Tensor = x + self.dropout(self.contract(F.gelu(self.expand(self.norm_2(x)))))
        return out


class Transformer(nn.Module):
    """The blocks between the word vectors and the output layer (module docstring); returns ``LN(x_L)``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = config.embedding_dim
        self.positions = nn.Embedding(config.context, width)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(width, config.hidden_size, config.heads, config.dropout) for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, embedded: torch.Tensor, tokens: torch.Tensor, left_padded: bool) -> torch.Tensor:
        """``embedded`` (B, T, C) word vectors of ``tokens`` (B, T); ``left_padded``: rows may start with padding."""
        if left_padded:
            real = tokens != 0
            positions = (real.cumsum(1) - 1).clamp(min=0)
            steps = tokens.shape[1]
            causal = torch.ones(steps, steps, dtype=torch.bool, device=tokens.device).tril()
            itself = torch.eye(steps, dtype=torch.bool, device=tokens.device)
            allowed: torch.Tensor | None = ((causal & real.unsqueeze(1)) | itself).unsqueeze(1)  # (B, 1, T, T)
        else:
            positions, allowed = torch.arange(tokens.shape[1], device=tokens.device), None
        x = self.dropout(embedded + self.positions(positions))
        for block in self.blocks:
            x = block(x, allowed)
        normed: torch.Tensor = self.norm(x)
        return normed


@torch.no_grad()
def gpt2_init_(body: Transformer, embedding: nn.Embedding, output: nn.Linear) -> None:
    """GPT-2's initialization, as nanoGPT's: weights of linear layers and embeddings ``N(0, 0.02²)``, biases 0,
    each residual projection ``N(0, (0.02 / √(2L))²)``; LayerNorms keep weight 1, bias 0."""
    residual_std = GPT2_STD / math.sqrt(2 * len(body.blocks))
    for module in [embedding, output, *body.modules()]:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, GPT2_STD)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
    for module in body.modules():  # after the loop above, which visits each block before its layers
        if isinstance(module, Block):
            nn.init.normal_(module.attention.proj.weight, 0.0, residual_std)
            nn.init.normal_(module.contract.weight, 0.0, residual_std)


def transformer_parameters(config: ModelConfig) -> int:
    """Weights of :class:`Transformer`: positions ``P·C``; per block ``4C² + 4C`` (attention), ``2CF + F + C`` (feed-forward),
    ``4C`` (two LayerNorms); the final LayerNorm ``2C``."""
    width, feed = config.embedding_dim, config.hidden_size
    block = 4 * width * width + 4 * width + 2 * width * feed + feed + width + 4 * width
    return config.context * width + config.num_layers * block + 2 * width
