"""Measure 8, generation: latency of a 10-word greedy continuation, for one seed and for the table.

:func:`engine.generate.generate` on runs rebuilt by :func:`engine.runs.checkpoint.load_run` (W1 runs
left by the other measures, or trained here for one epoch when fewer than 4 exist). One seed:
"New York" on one run. The table: 6 seeds × 4 runs, as the TUI's comparison refreshes it.
Baseline: the bare model calls any greedy generator makes, 10 forward passes per continuation on
inputs of the same shapes (pre-padded to the run's width for prefix-trained runs), with no
cleaning, entropy or alternatives. Ratio = generate ÷ that floor. Targets on CPU: ≤ 50 ms and ≤ 300 ms.
"""

from __future__ import annotations

import torch

from bench.context import Bench
from bench.table import Row, seconds, skipped
from bench.timing import TrainedRun, paired_medians, timed
from engine.generate import generate
from engine.lm.corpus import clean
from engine.runs.checkpoint import LoadedRun, list_runs, load_run
from engine.training.trainer import resolve_device

MEASURE = "8 generation: 10 greedy words"
SEEDS = ["United States", "New York", "Donald Trump", "North Korea", "White House", "Health Care"]
RUNS = 4
WORDS = 10
WEIGHTS = [10.0, 0.0, 1.0, 100.0]


def measure(bench: Bench) -> list[Row]:
    workload = bench.workloads["W1"]
    if not workload.available:
        return [skipped("W1", MEASURE, workload.missing)]
    device = resolve_device(bench.device)
    runs = [load_run(bench.checkpoints, name, device) for name in _run_names(bench)]
    one_repeats, table_repeats = bench.pick(5, 30), bench.pick(2, 7)
    one, one_floor = paired_medians(
        timed(lambda: generate(runs[0], SEEDS[1], WORDS)), timed(lambda: _forward_floor(runs[0], SEEDS[1])), one_repeats
    )
    table, table_floor = paired_medians(
        timed(lambda: [generate(run, seed, WORDS) for seed in SEEDS for run in runs]),
        timed(lambda: [_forward_floor(run, seed) for seed in SEEDS for run in runs]),
        table_repeats,
    )
    return [
        Row(
            "W1",
            f"{MEASURE}, 1 seed",
            seconds(one),
            f"{seconds(one_floor)} (10 bare forwards)",
            one / one_floor,
            "≤ 50 ms (CPU)",
            one <= 0.050,
        ),
        Row(
            "W1",
            f"{MEASURE}, {len(SEEDS)} seeds × {len(runs)} runs",
            seconds(table),
            f"{seconds(table_floor)} (bare forwards)",
            table / table_floor,
            "≤ 300 ms (CPU)",
            table <= 0.300,
        ),
    ]


def _run_names(bench: Bench) -> list[str]:
    """Up to 4 finished W1 runs from this session; the missing ones are trained for one epoch."""
    w1 = bench.workloads["W1"]
    names = [
        item.name
        for item in list_runs(bench.checkpoints)
        if item.record is not None and item.record.config.corpus.paths == w1.paths and item.record.status == "finished"
    ]
    for weight in WEIGHTS[len(names[:RUNS]) : RUNS]:
        config = w1.config(bench.run_name("gen-W1"), bench.device, {"train.epochs": 1, "objective.weight": weight})
        for _ in TrainedRun(config, w1.corpus(), bench.checkpoints):
            pass
        names.append(config.name)
    return names[:RUNS]


@torch.no_grad()
def _forward_floor(run: LoadedRun, seed_text: str) -> None:
    """The 10 model calls of a greedy continuation, nothing else (the last output is read back)."""
    index = {word: i for i, word in enumerate(run.record.vocab)}
    tokens = [index[word] for word in clean(seed_text) if word in index]
    device = next(run.model.parameters()).device
    prefix = run.record.config.train.batching == "prefix"
    for _ in range(WORDS):
        shown = [0] * (run.record.prefix_width - len(tokens)) + tokens if prefix else tokens
        raw = run.model(torch.tensor([shown[-run.record.prefix_width :] if prefix else shown], device=device), last_only=True)
        tokens.append(int(raw[0].argmax()))
