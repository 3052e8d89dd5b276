"""Measure 2, engine overhead: the engine's trainer vs the plain loop of :mod:`bench.plain_loop`.

The trainer emits events, keeps live and epoch metrics, validates and checkpoints every epoch;
the plain loop trains the same model on the same batches in the same order and does nothing
else. They alternate every live-metrics window (:func:`bench.timing.interleave`), with bursts
of measure 3's matmul baseline between them. Ratio = trainer pairs/s ÷ plain-loop pairs/s, target ≥ 0.95. Two
rows per workload: the whole epoch (validation and checkpoint included: what a user waits for)
and the train phase alone (the per-step cost of events and live metrics).

Settings: W1 as the paper preset has it (pair split, prefix batching); W2 with the default
document batching; W3 (document batching) on its first batches only.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.context import Bench
from bench.plain_loop import PlainRun
from bench.table import Row, skipped
from bench.timing import MatmulRun, Repetition, TrainedRun, TrainerTiming, batch_pairs, first_batches, interleave
from bench.workloads import document_run
from engine.config.models import RunConfig
from engine.lm.corpus import Corpus
from engine.training.trainer import resolve_device

MEASURE = "2 engine overhead: pairs/s, trainer vs plain loop"
TARGET = 0.95
FULL_RUN_ONLY = "full run only (W3 loads 1 M tokens and trains 20 batches)"


def settings(bench: Bench) -> dict[str, tuple[dict[str, Any], int | None]]:
    """Per workload: the trainer overrides and the batch limit (None: whole epochs)."""
    return {
        "W1": ({"train.epochs": bench.pick(1, 3)}, None),
        "W2": (document_run(bench.pick(1, 2)), bench.pick(30, None)),
        "W3": ({"train.epochs": 1}, 20),
    }


@dataclass
class Timings:
    """One workload's trainer run, the plain loop's and the matmul baseline (measure 3), all interleaved."""

    trainer: TrainerTiming
    plain: list[Repetition]
    matmul: MatmulRun


def timings(bench: Bench) -> dict[str, Timings | str]:
    """Per workload, the interleaved timings, or why it was skipped (measured once a session)."""

    def compute() -> dict[str, Timings | str]:
        results: dict[str, Timings | str] = {}
        for key, (extra, max_steps) in settings(bench).items():
            workload = bench.workloads[key]
            if not workload.available:
                results[key] = workload.missing
            elif key == "W3" and bench.quick:
                results[key] = FULL_RUN_ONLY
            else:
                config = workload.config(bench.run_name(f"{key}-overhead"), bench.device, extra)
                trained, plain = (
                    TrainedRun(config, workload.corpus(), bench.checkpoints, max_steps),
                    PlainRun(config, workload.corpus(), max_steps),
                )
                matmul = MatmulRun(*matmul_shape(config, workload.corpus(), max_steps), resolve_device(bench.device))
                interleave(trained, plain, alongside=matmul)
                results[key] = Timings(trained.timing, plain.reps, matmul)
        return results

    return bench.once("overhead", compute)


def matmul_shape(config: RunConfig, corpus: Corpus, max_steps: int | None) -> tuple[int, int, int]:
    """``(M, H, V)``: M the mean scored positions per training batch (of the first ``max_steps``, if given)."""
    batches, order = first_batches(config, corpus, max_steps)
    rows = round(sum(batch_pairs(batches, members) for members in order) / len(order))
    return rows, config.model.hidden_size, len(corpus.vocab)


def per_workload(bench: Bench, measure: str, rows_of: Callable[[str, Timings], list[Row]]) -> list[Row]:
    """Each workload's rows from its :func:`timings` (``rows_of(key, timings)``), or a row saying why it was skipped."""
    rows = []
    for key, result in timings(bench).items():
        rows.extend([skipped(key, measure, result)] if isinstance(result, str) else rows_of(key, result))
    return rows


def measure(bench: Bench) -> list[Row]:
    return per_workload(bench, MEASURE, overhead_rows)


def overhead_rows(key: str, result: Timings) -> list[Row]:
    """The whole epoch's and the train phase's rate against the plain loop's (the train phase alone for a partial run)."""
    timing, plain = result.trainer, result.plain
    plain_rate = statistics.median(rep.rate for rep in plain)
    phases = (
        [("train phase", timing.train_rate)]
        if timing.partial
        else [("whole epoch", timing.rate), ("train phase", timing.train_rate)]
    )
    return [
        Row(
            key,
            f"{MEASURE} ({phase}, {timing.label}; head: {timing.fused_head.split(' (')[0]})",
            f"{rate:,.0f} pairs/s",
            f"{plain_rate:,.0f} pairs/s",
            rate / plain_rate,
            f"≥ {TARGET}×",
            rate / plain_rate >= TARGET,
        )
        for phase, rate in phases
    ]
