"""Measure 4, TUI cost: a run started from the app vs the same run through ``lm-explorer train``.

The app runs headless under ``App.run_test`` (120 × 36) on its Plots tab, so the four live
plots redraw as the run reports; the run starts with ``ExplorerApp.start_runs`` and is timed
until ``run_status`` says finished. The baseline is the console script ``lm-explorer train``
with the same settings, timed from spawning it to its exit. Both start a Python process that
imports torch, loads the corpus, trains W1's run (the paper preset, the study's objective) for
the same epochs and saves its checkpoints (the app's run is a detached trainer process started
by the engine's controller, see ``engine.jobs.controller``); the order alternates between repetitions. Ratio = TUI pairs/s ÷
headless pairs/s (training pairs × epochs over the wall time), target ≥ 0.9.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.context import Bench
from bench.table import Row, skipped
from bench.tui_harness import APP_SIZE, FINAL_STATUSES, tui_available, wait_until
from engine.config.models import RunConfig
from engine.training.trainer import make_split

MEASURE = "4 TUI cost: pairs/s, run from the TUI vs lm-explorer train"
TARGET = 0.9


def measure(bench: Bench) -> list[Row]:
    workload = bench.workloads["W1"]
    if not tui_available():
        return [skipped("W1", MEASURE, "tui.app not available")]
    if not workload.available:
        return [skipped("W1", MEASURE, workload.missing)]
    epochs, repeats = bench.pick(1, 5), bench.pick(1, 3)
    extra = {"train.epochs": epochs}
    pairs = make_split(workload.config("pairs", bench.device, extra), workload.corpus()).train.pairs * epochs
    tui_times, headless_times = [], []
    for repeat in range(repeats):
        for where in ("headless", "tui") if repeat % 2 == 0 else ("tui", "headless"):
            config = workload.config(bench.run_name(f"{where}-W1"), bench.device, extra)
            if where == "tui":
                tui_times.append(asyncio.run(tui_seconds(config, bench)))
            else:
                headless_times.append(headless_seconds(config, bench))
    tui, headless = pairs / statistics.median(tui_times), pairs / statistics.median(headless_times)
    return [
        Row(
            "W1",
            f"{MEASURE} ({epochs} ep, median of {repeats})",
            f"{tui:,.0f} pairs/s",
            f"{headless:,.0f} pairs/s",
            tui / headless,
            f"≥ {TARGET}×",
            tui / headless >= TARGET,
        )
    ]


def headless_seconds(config: RunConfig, bench: Bench) -> float:
    """Wall time of ``lm-explorer train`` with ``config``'s settings, from spawn to exit."""
    command = [
        str(Path(sys.executable).with_name("lm-explorer")),
        "train",
        "--preset",
        "paper",
        "--corpus",
        *config.corpus.paths,
        "--loss",
        config.objective.loss,
        "--regularizer",
        config.objective.regularizer,
        "--weight",
        str(config.objective.weight),
        "--epochs",
        str(config.train.epochs),
        "--device",
        config.train.device,
        "--checkpoints",
        str(bench.checkpoints),
        "--name",
        config.name,
        "--json",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


async def tui_seconds(config: RunConfig, bench: Bench) -> float:
    """Wall time of the same run started from the app with its plots on screen, until it shows as finished."""
    from tui.app import ExplorerApp

    app = ExplorerApp(checkpoints=str(bench.scratch / bench.run_name("tui-checkpoints")), device=bench.device)
    async with app.run_test(size=APP_SIZE) as pilot:
        await pilot.press("f3")
        start = time.perf_counter()
        app.start_runs([config])
        await wait_until(lambda: app.run_status(config.name) in FINAL_STATUSES, f"TUI run {config.name} to end")
        elapsed = time.perf_counter() - start
        status = app.run_status(config.name)
    if status != "finished":
        raise RuntimeError(f"TUI run {config.name} ended {status}")
    return elapsed
