"""Measure 5, TUI responsiveness under load: key press → the next completed frame that shows it.

The app runs headless under ``App.run_test`` (120 × 36) on its Plots tab while W2's run (the
paper preset on all nine files), started with ``ExplorerApp.start_runs``, trains and its plots
redraw live. Keys go through the Pilot, alternating F5 (focus the runs list) and F3 (Plots tab,
focus the plot grid), each a visible change, at irregular intervals of 50–250 ms; the first four
are not counted. Latency: from just before the key is sent to the completion of the first frame
whose focused widget is the one the key asked for (:class:`bench.tui_harness.FrameClock`).
Baseline: the same keys with no run training. Ratio = loaded p95 ÷ idle p95; target p95 ≤ 100 ms.

:func:`cursor_latencies` times the plots' cursor the same way (measure 9 runs it while two runs train):
← from the last x, each press a step back, until the first frame whose readout names the cursor's new x.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path

from bench.context import Bench
from bench.table import Row, skipped
from bench.tui_harness import APP_SIZE, FrameClock, tui_available, wait_until
from engine.config.models import RunConfig

MEASURE = "5 TUI key → frame while W2 trains"
TARGET_P95 = 0.100
WARM_UP_KEYS = 4


def measure(bench: Bench) -> list[Row]:
    workload = bench.workloads["W2"]
    if not tui_available():
        return [skipped("W2", MEASURE, "tui.app not available")]
    if not workload.available:
        return [skipped("W2", MEASURE, workload.missing)]
    presses = bench.pick(20, 60)
    idle = asyncio.run(latencies(bench, [], presses))
    loaded = asyncio.run(latencies(bench, [workload.config(bench.run_name("keys-W2"), bench.device)], presses))
    rows = []
    for label, quantile in (("p50", 0.50), ("p95", 0.95)):
        value, base = percentile(loaded, quantile), percentile(idle, quantile)
        target, met = ("≤ 100 ms", value <= TARGET_P95) if label == "p95" else ("–", None)
        rows.append(
            Row(
                "W2",
                f"{MEASURE}, {label} of {len(loaded)} keys",
                f"{value * 1000:.0f} ms",
                f"{base * 1000:.0f} ms (no run)",
                value / base,
                target,
                met,
            )
        )
    return rows


def percentile(values: list[float], quantile: float) -> float:
    """The ``quantile`` of ``values`` by linear interpolation (``statistics.quantiles``, inclusive)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(quantile * 100) - 1]


async def latencies(
    bench: Bench, configs: list[RunConfig], presses: int, checkpoints: Path | None = None, listed: int = 0
) -> list[float]:
    """Key → frame latencies of ``presses`` keys, while ``configs`` train (or with no run); ``checkpoints``: the folder
    the app opens (default a fresh one), once it lists ``listed`` runs."""
    from tui.app import ExplorerApp
    from tui.widgets.plots import MetricPlots
    from tui.widgets.runs_table import RunsTable

    folder = checkpoints or bench.scratch / bench.run_name("tui-checkpoints")
    app = ExplorerApp(checkpoints=str(folder), device=bench.device)
    rng = random.Random(0)
    async with app.run_test(size=APP_SIZE) as pilot:
        clock = FrameClock(app)
        await wait_until(lambda: len(app.runs_table.runs) >= listed, f"the app to list {listed} runs")
        await pilot.press("f3")
        if configs:
            app.start_runs(configs)
            runs = [app.session.get(config.name) for config in configs]
            await wait_until(
                lambda: all(run.status == "training" and len(run.series.get("train_loss", [])) >= 2 for run in runs),
                "the TUI runs to report",
            )
        found = []
        for i in range(WARM_UP_KEYS + presses):
            key, kind = ("f5", RunsTable) if i % 2 == 0 else ("f3", MetricPlots)
            await asyncio.sleep(rng.uniform(0.05, 0.25))
            start = time.perf_counter()
            await pilot.press(key)
            shown = await clock.first_after(start, lambda focused, kind=kind: isinstance(focused, kind))
            if i >= WARM_UP_KEYS:
                found.append(shown - start)
        if configs:
            app.shut_down()
            await wait_until(lambda: app.return_code is not None, "the TUI runs to stop and save", timeout=120)
    return found


async def cursor_latencies(bench: Bench, configs: list[RunConfig], presses: int) -> tuple[list[float], list[float]]:
    """Cursor key → the first frame whose readout shows the new x, ``presses`` times while ``configs`` train, then
    ``presses`` times once they are stopped (the baseline: the same runs and points, nothing training)."""
    from tui.app import ExplorerApp
    from tui.widgets.plots import x_text

    app = ExplorerApp(checkpoints=str(bench.scratch / bench.run_name("cursor-checkpoints")), device=bench.device)
    rng = random.Random(0)
    async with app.run_test(size=APP_SIZE) as pilot:
        plots = app.plots
        clock = FrameClock(app, probe=lambda: str(plots.query_one("#plot-readout").render()))

        async def timed() -> list[float]:
            await pilot.press("f3", "end")
            found = []
            for i in range(WARM_UP_KEYS + presses):
                await asyncio.sleep(rng.uniform(0.05, 0.25))
                start = time.perf_counter()
                await pilot.press("left")
                shown = f"{plots.x_axis} {x_text(plots.cursor or 0.0, plots.x_axis)} │"
                stamp = await clock.first_after(start, lambda readout, shown=shown: readout.startswith(shown))
                if i >= WARM_UP_KEYS:
                    found.append(stamp - start)
            return found

        app.start_runs(configs)
        runs = [app.session.get(config.name) for config in configs]
        wanted = 2 * (WARM_UP_KEYS + presses)  # ← never runs out of x values
        await wait_until(lambda: all(len(run.series.get("train_loss", [])) >= wanted for run in runs), "the runs' windows")
        loaded = await timed()
        for run in runs:
            app.controller.stop(run.name)
        await wait_until(lambda: not any(run.alive for run in runs), "the runs to stop and save", timeout=120)
        idle = await timed()
        app.exit()
    return loaded, idle
