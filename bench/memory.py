"""Measure 7, memory: peak resident set size (RSS) of ``lm-explorer train`` on W1, W2 and W3.

Each run is its own process (the console script, one epoch); its peak RSS is its own
``ru_maxrss``, read through the small shim :mod:`bench.peak_rss`. Baseline: a process that only
imports torch and the engine's trainer (the floor every run pays); ratio = peak / floor.

W1 and W2 run the paper preset with the study's objective. One epoch of W3 (1 M tokens) takes
far longer than this suite may, so it is measured in its two phases: ``lm-explorer train``
stopped by SIGINT (as Ctrl-C, which saves a checkpoint) after its first batches, and the
validation pass in :mod:`bench.eval_peak` on the validation batches holding the most positions.
Target: W3 under 2 GiB.

Scaling: ``(RSS_W3 − RSS_W1) / (tokens_W3 − tokens_W1)``, bytes per extra token, against
``4·V`` bytes per token (a float32 one-hot row per token, what RSS ∝ tokens × vocabulary would
cost); target under 10% of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.context import Bench
from bench.table import Row, mib, skipped
from bench.workloads import REPO, Workload, token_count

MEASURE = "7 memory: peak RSS of lm-explorer train"
LIMIT = 2 * 2**30
W3_TRAIN_SECONDS = 45.0
ONE_HOT_SHARE = 0.10


def measure(bench: Bench) -> list[Row]:
    floor = peak_rss([sys.executable, "-c", "import torch, engine.training.trainer"])
    baseline = f"{mib(floor)} (import torch + engine)"
    rows, peaks = [], {}
    for key in ("W1", "W2"):
        workload = bench.workloads[key]
        if not workload.available:
            rows.append(skipped(key, MEASURE, workload.missing))
            continue
        if key == "W2" and bench.quick:
            rows.append(skipped(key, MEASURE, "full run only (a W2 epoch with prefix batching takes minutes)"))
            continue
        peaks[key] = peak_rss(_train_command(bench, workload, ["--preset", "paper", "--regularizer", "kl", "--weight", "10"]))
        rows.append(Row(key, f"{MEASURE} (1 epoch)", f"{mib(peaks[key])} ({_size(workload)})", baseline, peaks[key] / floor))
    w3 = bench.workloads["W3"]
    if bench.quick:
        return [*rows, skipped("W3", MEASURE, "full run only (loading 1 M tokens and training take minutes)")]
    train_peak, steps = _w3_train_phase(bench, w3)
    eval_peak = peak_rss([sys.executable, "-m", "bench.eval_peak", w3.paths[0], bench.device])
    for phase, peak in (
        (f"train phase: SIGINT after {W3_TRAIN_SECONDS:g} s, {steps} steps", train_peak),
        ("validation pass, heaviest eval batches (bench.eval_peak)", eval_peak),
    ):
        rows.append(
            Row(
                "W3",
                f"{MEASURE} ({phase})",
                f"{mib(peak)} ({_size(w3)})",
                baseline,
                peak / floor,
                f"< {mib(LIMIT)}",
                peak < LIMIT,
            )
        )
    if "W1" in peaks:
        rows.append(_scaling(bench, peaks["W1"], max(train_peak, eval_peak), w3))
    return rows


def _scaling(bench: Bench, w1_peak: int, w3_peak: int, w3: Workload) -> Row:
    extra_tokens = token_count(w3.corpus()) - token_count(bench.workloads["W1"].corpus())
    per_token = (w3_peak - w1_peak) / extra_tokens
    one_hot = 4 * len(w3.corpus().vocab)
    share = per_token / one_hot
    return Row(
        "W1→W3",
        "7 memory: RSS growth per token (W3 − W1)",
        f"{per_token:.0f} B/token ({per_token * 1e6 / 2**20:.0f} MiB per M tokens)",
        f"{one_hot / 1024:.1f} KiB/token (float32 one-hot row, V={len(w3.corpus().vocab)})",
        share,
        f"< {ONE_HOT_SHARE:.0%}",
        share < ONE_HOT_SHARE,
    )


def _size(workload: Workload) -> str:
    return f"{token_count(workload.corpus()) / 1e6:.3g} M tokens, V={len(workload.corpus().vocab)}"


def _train_command(bench: Bench, workload: Workload, options: list[str]) -> list[str]:
    return [
        str(Path(sys.executable).with_name("lm-explorer")),
        "train",
        "--corpus",
        *workload.paths,
        *options,
        "--epochs",
        "1",
        "--device",
        bench.device,
        "--checkpoints",
        str(bench.scratch / "memory-runs"),
        "--name",
        bench.run_name(f"mem-{workload.key}"),
        "--json",
    ]


def _w3_train_phase(bench: Bench, w3: Workload) -> tuple[int, int]:
    """Peak RSS of ``lm-explorer train`` on W3 stopped by SIGINT, and the steps it trained."""
    config = w3.config("w3", bench.device)
    options = [
        "--max-vocab",
        str(config.corpus.max_vocab),
        "--embedding-dim",
        str(config.model.embedding_dim),
        "--hidden-size",
        str(config.model.hidden_size),
        "--dropout",
        str(config.model.dropout),
        "--head",
        config.model.head,
        "--init",
        config.model.init,
        "--loss",
        "mse",
        "--regularizer",
        "kl",
        "--weight",
        "10",
    ]
    command = _train_command(bench, w3, options)
    peak = peak_rss(command, interrupt_after=W3_TRAIN_SECONDS)
    record = bench.scratch / "memory-runs" / command[command.index("--name") + 1] / "run.json"
    return peak, json.loads(record.read_text())["step"] if record.is_file() else 0


def peak_rss(command: list[str], interrupt_after: float | None = None) -> int:
    """Peak RSS in bytes of ``command``'s process (through :mod:`bench.peak_rss`); SIGINT after ``interrupt_after`` s if given."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        shim = subprocess.Popen(
            [sys.executable, "-m", "bench.peak_rss", out.name, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        if interrupt_after is not None:
            try:
                shim.wait(timeout=interrupt_after)
            except subprocess.TimeoutExpired:
                os.kill(shim.pid, signal.SIGINT)
        _, stderr = shim.communicate()
        if shim.returncode not in (0, 130):
            raise RuntimeError(
                f"{' '.join(command[:3])} … exited {shim.returncode}: {stderr.decode(errors='replace').strip()[-300:]}"
            )
        return int(out.read())
