"""Measure 0, the peer: lm-explorer against the study's own Keras pipeline, whole epochs and peak memory.

The peer is ``../shared/peers/keras-study/run`` (Keras 3 on TensorFlow CPU, the study's model,
data preparation and metrics; its first call builds a ~1 GB virtual environment from PyPI). Each
side trains the study's control (linear head, MSE) for :data:`EPOCHS` epochs as its own process,
one after the other, on W1 (``ArticlesApril2017.csv``) and W2 (all nine NYT files):

- Keras: its ``steady_epoch_s`` (epochs after the first, validation and metrics included);
- lm-explorer ``train --preset paper`` (the study's prefix batching and pair split), the same
  model with document batching and split (``--split document --batching document``), and that
  again with the head compiled (``--compile on``): the epoch lines' ``wall_s`` in
  ``metrics.jsonl``, epochs after the first, validation and checkpoint included (the compile
  happens before the first epoch; its time is in the process's total, not in the epochs).

Beside them, per workload, one training step phase by phase against this machine's floor
(:mod:`bench.breakdown`). Peak RSS is each process's own (:mod:`bench.peak_rss`). Ratios: Keras epoch ÷ lm-explorer epoch
(the speed-up) and lm-explorer peak ÷ Keras peak. Targets on W2: ≥ 3× with the paper preset,
≥ 6× with document batching, peak RSS ≤ 1/20 of Keras's.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench import breakdown
from bench.context import Bench
from bench.memory import peak_rss
from bench.table import Row, mib, seconds, skipped
from bench.workloads import REPO

MEASURE = "0 peer: whole epoch vs the study's Keras pipeline"
PEER = REPO / ".." / "shared" / "peers" / "keras-study" / "run"
EPOCHS = 2
SPEED_TARGETS = {("W2", "paper"): 3.0, ("W2", "document"): 6.0, ("W2", "document, compiled"): 6.0}
RSS_SHARE = 1 / 20
SETTINGS = {
    "paper": [],
    "document": ["--split", "document", "--batching", "document"],
    "document, compiled": ["--split", "document", "--batching", "document", "--compile", "on"],
}


def measure(bench: Bench) -> list[Row]:
    if not PEER.is_file():
        return [skipped(key, MEASURE, f"the peer is absent ({PEER} not found)") for key in ("W1", "W2")]
    rows = []
    for key in ("W1", "W2"):
        workload = bench.workloads[key]
        if not workload.available:
            rows.append(skipped(key, MEASURE, workload.missing))
            continue
        files = [workload.paths[0]] if key == "W1" else sorted(str(p) for p in Path(workload.paths[0]).glob("Articles*.csv"))
        try:
            keras_epoch, keras_peak = keras_run(bench, key, files)
        except RuntimeError as error:
            rows.append(skipped(key, MEASURE, f"the Keras pipeline did not run: {error}"))
            rows.extend(breakdown.measure(bench, key))
            continue
        for setting, options in SETTINGS.items():
            epoch, first, peak = lm_explorer_run(bench, key, workload.paths, options)
            target = SPEED_TARGETS.get((key, setting))
            rows.append(
                Row(
                    key,
                    f"{MEASURE} (lm-explorer {setting_label(setting)}, epochs 2–{EPOCHS}; first {seconds(first)})",
                    seconds(epoch),
                    f"{seconds(keras_epoch)} (Keras, control)",
                    keras_epoch / epoch,
                    "–" if target is None else f"≥ {target:g}× faster",
                    None if target is None else keras_epoch / epoch >= target,
                )
            )
            rss_target = key == "W2"
            rows.append(
                Row(
                    key,
                    f"0 peer: peak RSS vs the study's Keras pipeline (lm-explorer {setting_label(setting)})",
                    mib(peak),
                    f"{mib(keras_peak)} (Keras)",
                    peak / keras_peak,
                    f"≤ {RSS_SHARE:.2g}×" if rss_target else "–",
                    peak / keras_peak <= RSS_SHARE if rss_target else None,
                )
            )
        rows.extend(breakdown.measure(bench, key))
    return rows


def setting_label(setting: str) -> str:
    if setting == "paper":
        return "--preset paper"
    return "paper model, document batching" + (", --compile on" if "compiled" in setting else "")


def keras_run(bench: Bench, key: str, files: list[str]) -> tuple[float, int]:
    """The Keras pipeline's steady epoch seconds and peak RSS on ``files``; RuntimeError with its last words if it fails."""
    out = bench.scratch / f"keras-{key}"
    command = [str(PEER), "--files", *files, "--loss", "control", "--epochs", str(EPOCHS), "--out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    probe = subprocess.run([str(PEER), "--help"], capture_output=True, text=True, env=env)  # builds its venv on first use
    if probe.returncode != 0:
        raise RuntimeError((probe.stderr.strip().splitlines() or ["no output"])[-1][:200])
    peak = peak_rss(command)
    metrics = json.loads((out / "metrics.json").read_text())
    return float(metrics["steady_epoch_s"]), peak


def lm_explorer_run(bench: Bench, key: str, paths: list[str], options: list[str]) -> tuple[float, float, int]:
    """lm-explorer's median epoch seconds after the first, its first epoch's, and its peak RSS."""
    name = bench.run_name(f"peer-{key}")
    checkpoints = bench.scratch / "peer-runs"
    command = [
        str(Path(sys.executable).with_name("lm-explorer")),
        "train",
        "--corpus",
        *paths,
        "--preset",
        "paper",
        *options,
        "--epochs",
        str(EPOCHS),
        "--device",
        bench.device,
        "--checkpoints",
        str(checkpoints),
        "--name",
        name,
        "--json",
    ]
    peak = peak_rss(command)
    walls = [
        line["wall_s"]
        for line in map(json.loads, (checkpoints / name / "metrics.jsonl").read_text().splitlines())
        if line.get("kind") == "epoch"
    ]
    epochs = [later - earlier for earlier, later in itertools.pairwise(walls)]
    return statistics.median(epochs), walls[0], peak
