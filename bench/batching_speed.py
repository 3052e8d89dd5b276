"""Measure 1, batching: epoch time with the default ``document`` batching vs the study's ``prefix`` n-grams.

Both run the workload's model and objective on the same document split (``corpus.split``
``document``: the paper preset's pair split only works with prefix batching), for the same
epochs, through the engine's trainer, their epochs alternating. Ratio = prefix epoch time ÷
document epoch time (the speed-up); the validation loss after the last epoch stands beside each.
Targets: ≥ 5× on W2, not slower (≥ 1×) on W1.
"""

from __future__ import annotations

from bench.context import Bench
from bench.table import Row, seconds, skipped
from bench.timing import TrainedRun, TrainerTiming, interleave
from bench.workloads import document_run

MEASURE = "1 batching: epoch time, document vs prefix"
TARGETS = {"W1": 1.0, "W2": 5.0}


def measure(bench: Bench) -> list[Row]:
    rows = []
    for key, target in TARGETS.items():
        workload = bench.workloads[key]
        if not workload.available:
            rows.append(skipped(key, MEASURE, workload.missing))
            continue
        epochs, max_steps = (bench.pick(1, 5), None) if key == "W1" else (bench.pick(1, 2), bench.pick(30, None))
        document, prefix = (
            TrainedRun(
                workload.config(bench.run_name(f"{key}-{batching}"), bench.device, document_run(epochs, batching)),
                workload.corpus(),
                bench.checkpoints,
                max_steps,
            )
            for batching in ("document", "prefix")
        )
        interleave(document, prefix)
        ratio = prefix.timing.epoch_seconds / document.timing.epoch_seconds
        rows.append(
            Row(
                key,
                f"{MEASURE} ({document.timing.label})",
                _cell(document.timing),
                _cell(prefix.timing),
                ratio,
                f"≥ {target:g}× faster",
                ratio >= target,
            )
        )
    return rows


def _cell(timing: TrainerTiming) -> str:
    loss = "" if timing.partial else f", val loss {timing.val_loss:.4g} after {len(timing.reps)} ep"
    return f"{seconds(timing.epoch_seconds)}{loss}"
