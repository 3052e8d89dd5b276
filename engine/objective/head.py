"""The fused, chunked output head: outputs, loss, gradient and metrics in one pass per chunk.

The model's last layer maps each scored position's features ``h`` (n, H) to raw outputs over the
vocabulary, ``z = h Wᵀ + b`` (n, V). Every objective in :mod:`engine.objective.total` is a sum of
per-prediction terms whose derivative ``∂loss/∂z`` is known in closed form, so the head never
builds the whole (n, V) outputs: it walks the positions in chunks of ``rows`` and, per chunk,

1. computes ``z_c = h_c Wᵀ + b``;
2. takes the per-prediction losses and ``∂loss/∂z_c`` (:meth:`engine.objective.total.Objective.losses_and_gradient`),
   scaled by ``1/n`` since the loss is the mean over the batch's n predictions;
3. adds the chunk's metric sums (:class:`engine.objective.metrics.MetricTotals`) from the same ``z_c``;
4. accumulates ``∂W += (∂z_c)ᵀ h_c``, ``∂b += Σ_rows ∂z_c`` and writes ``∂h_c = ∂z_c W``.

That is the design of Liger Kernel's fused linear cross-entropy and of Cut Cross-Entropy
(Wijmans et al. 2024), here for every objective and with the live metrics in the same pass. The
gradients are computed during the forward pass (training always goes on to ``backward``), so
``backward`` only scales them by the incoming gradient. Without gradients (validation) the same
chunks run larger and skip step 2's derivative and step 4.

Chunks hold about :data:`CPU_CHUNK_ELEMENTS` outputs on a CPU (2 MiB per float32 tensor: a
chunk's dozen temporaries stay in the L3 cache and come from the allocator's free lists rather than
fresh pages; 4 MiB chunks page-faulted thousands of times a step, and chunks much smaller make the
``∂W`` products too thin; measured in ``docs/design/fused-head.md``) and :data:`CUDA_CHUNK_ELEMENTS`
on a GPU, enough to fill it. A chunk's element-wise math (:func:`chunk_math`) runs as plain torch
operations or fused by ``torch.compile`` (:class:`Fusion`, :func:`plan_fusion`).

API, for the trainer and for any model with a linear last layer::

    loss = head_loss_and_metrics(hidden, weight, bias, target_index, objective, head, totals, fusion=fusion)
    loss.backward()   # fills hidden.grad (or its graph's), weight.grad, bias.grad

``hidden`` (n, H) features at the scored positions, ``weight`` (V, H) and ``bias`` (V,) the
output layer's, ``target_index`` (n,) the next words, ``objective`` an
:class:`~engine.objective.total.Objective`, ``head`` ``"linear"`` or ``"softmax"``; ``totals`` (a
:class:`~engine.objective.metrics.MetricTotals`, optional) receives the metrics; ``fusion`` (optional,
plain torch by default) from :func:`plan_fusion`, warmed up with :meth:`Fusion.warm_up`.
Returns the mean loss; under ``torch.no_grad()`` it only evaluates, in larger chunks.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeAlias, overload

import torch

from engine.objective.metrics import MetricTotals, Outputs
from engine.objective.total import Objective

CPU_CHUNK_ELEMENTS = 1 << 19
CUDA_CHUNK_ELEMENTS = 1 << 24
EVAL_CHUNK_FACTOR = 4

ChunkResult: TypeAlias = tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]
"""What :func:`chunk_math` returns: ``∂loss/∂z`` (None without gradient), the metric sums, the ``argmax`` words."""


def chunk_rows(vocab_size: int, device: torch.device, training: bool = True) -> int:
    """Positions per chunk for a vocabulary of ``vocab_size`` on ``device`` (4× more without gradients)."""
    elements = CUDA_CHUNK_ELEMENTS if device.type == "cuda" else CPU_CHUNK_ELEMENTS
    if not training:
        elements *= EVAL_CHUNK_FACTOR
    return max(1, elements // vocab_size)


def head_loss_and_metrics(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    target_index: torch.Tensor,
    objective: Objective,
    head: str,
    totals: MetricTotals | None = None,
    rows: int | None = None,
    fusion: Fusion | None = None,
) -> torch.Tensor:
    """Mean loss over the n predictions of ``hidden`` (see the module docstring); metrics into ``totals``.

    Differentiable with respect to ``hidden``, ``weight`` and ``bias`` when gradients are enabled
    and any of them requires one; ``rows`` overrides the chunk size; ``fusion`` says how each
    chunk's element-wise math runs (default: plain torch).
    """
    fusion = fusion or PLAIN
    training = torch.is_grad_enabled() and any(t.requires_grad for t in (hidden, weight, bias))
    rows = rows or chunk_rows(weight.shape[0], hidden.device, training)
    if training:
        loss: torch.Tensor = _FusedHead.apply(hidden, weight, bias, target_index, objective, head, totals, rows, fusion)
        return loss
    with torch.no_grad():
        loss_sum = hidden.new_zeros((), dtype=torch.float64)
        for start in range(0, hidden.shape[0], rows):
            index = target_index[start : start + rows]
            raw = torch.addmm(bias, hidden[start : start + rows], weight.t())
            _, sums, guesses = fusion(raw, index, objective, head, False)
            loss_sum += sums[0]
            if totals is not None:
                totals.add_sums(sums, guesses, weight.shape[0])
        return (loss_sum / hidden.shape[0]).to(hidden.dtype)


def chunk_math(raw: torch.Tensor, target_index: torch.Tensor, objective: Objective, head: str, gradient: bool) -> ChunkResult:
    """Everything element-wise about one chunk's raw outputs ``z`` (rows, V), in one function:
    ``∂loss/∂z`` per prediction (None without ``gradient``), the metric sums
    (:meth:`~engine.objective.metrics.MetricTotals.sums`, whose first is the loss sum) and the ``argmax`` words."""
    outputs = Outputs(raw, head)
    if gradient:
        losses, grad_raw = objective.losses_and_gradient(outputs, target_index)
    else:
        losses, grad_raw = objective.losses(outputs, target_index), None
    sums, guesses = MetricTotals.sums(outputs, target_index, losses)
    return grad_raw, sums, guesses


class Fusion:
    """How a chunk's element-wise math (:func:`chunk_math`) runs: fused by ``torch.compile`` (Inductor
    generates C++ on a CPU, Triton on CUDA) or as plain torch operations, one pass each.

    Compiling takes seconds to a minute per objective and head (once with gradients, once
    without), so it is worth it only for long runs (:func:`plan_fusion`). ``description`` says
    which ran; a compiler that fails falls back to plain torch, saying why. Inductor's log line
    about a missing CUDA runtime on a CPU-only machine is silenced (it is not a problem here).
    """

    def __init__(self, compiled: bool, description: str, warm_key: str | None = None):
        self.compiled, self.description, self.warm_key = compiled, description, warm_key

    @overload
    def __call__(
        self, raw: torch.Tensor, target_index: torch.Tensor, objective: Objective, head: str, gradient: Literal[True]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    @overload
    def __call__(
        self, raw: torch.Tensor, target_index: torch.Tensor, objective: Objective, head: str, gradient: bool
    ) -> ChunkResult: ...

    def __call__(
        self, raw: torch.Tensor, target_index: torch.Tensor, objective: Objective, head: str, gradient: bool
    ) -> ChunkResult:
        if self.compiled and raw.shape[0] > 1:  # one row would be a new, specialised graph: not worth compiling
            return _compiled_chunk_math()(raw, target_index, objective, head, gradient)
        return chunk_math(raw, target_index, objective, head, gradient)

    def warm_up(self, objective: Objective, head: str, vocab_size: int, device: torch.device) -> None:
        """Compile now, on a small chunk, with and without gradients, rather than in the first steps."""
        if not self.compiled:
            return
        started = time.perf_counter()
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        raw, index = torch.randn(3, vocab_size, device=device), torch.zeros(3, dtype=torch.long, device=device)
        try:
            with torch.no_grad():  # as the chunks run: inside the autograd Function's forward, or in validation
                for gradient in (True, False):
                    self(raw, index, objective, head, gradient)
        except Exception as error:  # no working compiler: the plain chunk computes the same values
            self.compiled = False
            self.description = f"plain torch (torch.compile failed: {type(error).__name__}: {str(error).splitlines()[0][:160]})"
            return
        self.description += f", compiled in {time.perf_counter() - started:.1f} s (cache: {inductor_cache()})"
        if self.warm_key is not None:
            marker = warm_marker(self.warm_key)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()


PLAIN = Fusion(False, "plain torch")


def plan_fusion(device: torch.device, setting: str = "auto", warm_key: str | None = None) -> Fusion:
    """How this run's chunks run: ``setting`` ``on`` compiles, ``off`` does not; ``auto`` compiles on
    CUDA, and on a CPU when Inductor's on-disk cache already holds this chunk (``warm_key``, from
    :func:`compile_key`: a compile of the same objective and head finished with this cache before).

    On a CPU a cold compile costs more than most runs save, a warm one is repaid within a W2 epoch:
    so ``auto`` compiles on a CPU only with a warm cache, and ``--compile on`` warms it (measured:
    ``docs/design/fused-head.md``). Compiled code is kept between runs in :func:`inductor_cache`.
    """
    compiler = "Triton" if device.type == "cuda" else "C++"
    warm = warm_key is not None and warm_marker(warm_key).is_file()
    if setting == "on" or (setting == "auto" and (device.type == "cuda" or warm)):
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache()))
        why = ", the cache is warm" if setting == "auto" and device.type != "cuda" else ""
        return Fusion(True, f"torch.compile (Inductor, {compiler}{why})", warm_key)
    reason = "--compile off" if setting == "off" else "on a CPU auto compiles only with a warm cache: --compile on warms it"
    return Fusion(False, f"plain torch ({reason})")


def inductor_cache() -> Path:
    """Where Inductor keeps compiled code between runs: ``$TORCHINDUCTOR_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/lm-explorer/inductor`` (``~/.cache/lm-explorer/inductor``), not Inductor's
    default under ``/tmp``, which a reboot empties."""
    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lm-explorer" / "inductor"


def compile_key(objective: Objective, head: str, device: torch.device) -> str:
    """Names one compiled chunk: the torch build, the device type, the head and the objective's settings."""
    text = f"{torch.__version__}|{device.type}|{head}|{objective.config!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def warm_marker(key: str) -> Path:
    """The file a finished compile of ``key`` leaves in the cache, so the next run knows it is warm."""
    return inductor_cache() / f"lm-explorer-{key}.warm"


@functools.cache
def _compiled_chunk_math() -> Callable[[torch.Tensor, torch.Tensor, Objective, str, bool], ChunkResult]:
    return torch.compile(chunk_math, dynamic=True)


class _FusedHead(torch.autograd.Function):
    """Loss and gradients of the output layer, chunk by chunk; ``backward`` scales the kept gradients (once)."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        target_index: torch.Tensor,
        objective: Objective,
        head: str,
        totals: MetricTotals | None,
        rows: int,
        fusion: Fusion,
    ) -> torch.Tensor:
        count = hidden.shape[0]
        grad_hidden = torch.empty_like(hidden)
        # the first chunk's product sets grad_weight (with no rows there is none: zeros)
        grad_weight = torch.empty_like(weight) if count else torch.zeros_like(weight)
        grad_bias = torch.zeros_like(bias)
        loss_sum = hidden.new_zeros((), dtype=torch.float64)
        for start in range(0, count, rows):
            stop = min(start + rows, count)
            features, index = hidden[start:stop], target_index[start:stop]
            grad_raw, sums, guesses = fusion(torch.addmm(bias, features, weight.t()), index, objective, head, True)
            loss_sum += sums[0]
            if totals is not None:
                totals.add_sums(sums, guesses, weight.shape[0])
            # the 1/n of the mean, folded into the products
            grad_weight.addmm_(grad_raw.t(), features, beta=0.0 if start == 0 else 1.0, alpha=1.0 / count)
            grad_bias.add_(grad_raw.sum(0), alpha=1.0 / count)
            torch.mm(grad_raw, weight, out=grad_hidden[start:stop]).div_(count)
        ctx.grads = [grad_hidden, grad_weight, grad_bias]  # not saved tensors: backward hands these very tensors on
        return (loss_sum / count).to(hidden.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The kept gradients times ``grad_loss``, scaled in place and handed on, so only once: with no other
        reference left, autograd moves them into ``.grad`` where that is empty rather than copying the (V, H) ``∂W``."""
        grads, ctx.grads = ctx.grads, None
        if grads is None:
            raise RuntimeError("the fused head's gradients were already handed on: its backward runs once per forward")
        for g in grads:
            g.mul_(grad_loss)
        return (*grads, None, None, None, None, None, None)
