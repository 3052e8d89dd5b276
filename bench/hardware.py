"""Measure 3, closeness to the hardware: the model's FLOP rate while training vs ``torch.matmul``'s.

FLOPs are counted from the model's shapes (one multiply-add = 2 FLOPs), E the embedding size,
H the hidden size, V the vocabulary, L the LSTM layers:

- embedding lookups: free;
- LSTM forward, per computed position (padding included, since it is computed; prefix rows'
  shared leading padding once per batch) and layer ``l``:
  ``2 · 4H · (E_l + H)`` (input and recurrent products of the four gates; ``E_1 = E``, ``E_l = H``
  above); gate nonlinearities, O(H), are left out;
- output layer forward, per scored position (one per training pair): ``2 · H · V``;
- backward ≈ 2 × forward, so a training step costs 3 × its forward.

So the FLOPs of a set of batches are ``3 · [Σ_batches B·T · Σ_l 2·4H(E_l + H) + pairs · 2HV]`` with
B rows and T positions per batch. The achieved rate divides the FLOPs of the batches a timing
covered by its train-phase time (measure 2's trainer runs). The baseline is the same device's
``torch.matmul`` rate at a comparable shape, ``(M × H) @ (H × V)`` with M the mean scored
positions per batch, measured in short bursts between those runs' steps
(:class:`bench.timing.MatmulRun`), so under the same load. Ratio = the fraction of that rate
reached; aim ≥ 50% on W2.
"""

from __future__ import annotations

from functools import partial

from bench.context import Bench
from bench.overhead import Timings, per_workload
from bench.table import Row
from bench.timing import TrainerTiming, batch_pairs, first_batches
from engine.lm.batching import DocumentBatches
from engine.lm.corpus import Corpus

MEASURE = "3 hardware: training FLOP/s vs torch.matmul"
TARGETS = {"W2": 0.50}


def measure(bench: Bench) -> list[Row]:
    return per_workload(bench, MEASURE, partial(flop_rate_row, bench))


def flop_rate_row(bench: Bench, key: str, result: Timings) -> list[Row]:
    """The train phase's FLOP rate against the matmul baseline's."""
    flops, pairs = training_flops(result.trainer, bench.workloads[key].corpus())
    achieved = flops / pairs * result.trainer.train_rate
    peak = result.matmul.rate
    batch_rows, inner, cols = result.matmul.shape
    target = TARGETS.get(key)
    return [
        Row(
            key,
            f"{MEASURE} ({flops / pairs / 1e6:.3g} MFLOP/pair)",
            f"{achieved / 1e9:.3g} GFLOP/s",
            f"{peak / 1e9:.3g} GFLOP/s at ({batch_rows}×{inner})@({inner}×{cols})",
            achieved / peak,
            "–" if target is None else f"≥ {target:.0%}",
            None if target is None else achieved / peak >= target,
        )
    ]


def training_flops(timing: TrainerTiming, corpus: Corpus) -> tuple[float, int]:
    """FLOPs and pairs of the first epoch's batches (or of its first ``timing.steps``), by the formula above."""
    config = timing.config
    batches, order = first_batches(config, corpus, timing.steps)
    model = config.model
    hidden, vocab = model.hidden_size, len(corpus.vocab)
    lstm_per_position = sum(
        2 * 4 * hidden * ((model.embedding_dim if layer == 0 else hidden) + hidden) for layer in range(model.num_layers)
    )
    positions = pairs = 0
    for members in order:
        rows = len(members)
        if isinstance(batches, DocumentBatches):
            positions += rows * (max(len(batches.docs[i]) for i in members) - 1)
        else:  # the padding every row leads with runs once, on one row (engine/lm/prefix_lstm.py)
            pads = batches.width - int(batches.pair_rows[members][:, 1].max())
            positions += pads + rows * (batches.width - pads)
        pairs += batch_pairs(batches, members)
    return 3.0 * (positions * lstm_per_position + pairs * 2 * hidden * vocab), pairs
