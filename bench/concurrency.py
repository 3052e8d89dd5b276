"""Measure 9, runs side by side: a sweep's wall time against one run's, the app while two train, attach latency.

- **Sweep wall time** (W1, paper preset, weights 1 and 10): the controller queues the runs and
  its runner starts their trainer processes (:mod:`engine.jobs.controller`), timed from queueing to
  the last run's end. Baseline: one of the runs alone through the same path, timed with 1 thread
  and with every core; the faster is "one run's wall time". Two thread splits of the sweep are
  timed, interleaved with the baselines: two runs at once with ``cores / 2`` threads each (what
  ``--parallel auto`` does on CPU), and one run at a time with every core. Ratio = sweep ÷ one
  run; target ≤ 1.6×.
- **Key → frame while two runs train**: measure 5's keys (:func:`bench.tui_latency.latencies`)
  while the app's two-weight W1 sweep trains. Ratio = p95 ÷ idle p95; target p95 ≤ 150 ms.
- **Cursor → readout while two runs train**: ← on the Plots tab until the frame whose readout names the new
  x (:func:`bench.tui_latency.cursor_latencies`). Baseline: the same runs' points once they are stopped.
  Target p95 ≤ 150 ms.
- **Attach latency**: a headless ``lm-explorer train`` (W1) writes its ``metrics.jsonl`` while the
  app, started before it, follows the folder. A thread stamps each step line when it lands in the
  file (polling its size every 2 ms); the app's loop stamps it when the run's series holds it.
  Target p95 ≤ 1 s.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from bench.context import Bench
from bench.table import Row, skipped
from bench.tui_harness import APP_SIZE, tui_available, wait_until
from bench.tui_latency import cursor_latencies, latencies, percentile
from engine.config.models import RunConfig
from engine.jobs.controller import Controller

MEASURE = "9 concurrency"
SWEEP_TARGET = 1.6
KEYS_TARGET_P95 = 0.150
ATTACH_TARGET_P95 = 1.0
WEIGHTS = (1.0, 10.0)
REPEATS = 1  # a 2-thread run on a loaded 2-core box can take minutes: one of each


def measure(bench: Bench) -> list[Row]:
    workload = bench.workloads["W1"]
    if not workload.available:
        return [skipped("W1", MEASURE, workload.missing)]
    parts = [sweep_rows]
    parts += [key_rows, cursor_rows, lambda bench: [attach_row(bench)]] if tui_available() else []
    rows = [] if tui_available() else [skipped("W1", f"{MEASURE}: TUI", "tui.app not available")]
    for part in parts:  # one part's failure must not lose the others' rows
        try:
            rows.extend(part(bench))
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            rows.append(Row("W1", f"{MEASURE}: {getattr(part, '__name__', 'part')}", f"error: {type(error).__name__}: {error}"))
    return rows


def timed_sweep(bench: Bench, weights: tuple[float, ...], parallel: int, threads: int) -> float:
    """Seconds from queueing ``weights``' runs to the end of the last, ``parallel`` at once with ``threads`` each."""
    workload = bench.workloads["W1"]
    configs = [
        workload.config(bench.run_name(f"sweep-w{weight:g}"), bench.device, {"objective.weight": weight}) for weight in weights
    ]
    controller = Controller(bench.checkpoints)
    start = time.perf_counter()
    statuses = controller.run_queue(controller.queue(configs), parallel, bench.device, cpus=threads * parallel)
    elapsed = time.perf_counter() - start
    if set(statuses.values()) != {"finished"}:
        raise RuntimeError(f"sweep runs ended {statuses}")
    return elapsed


def sweep_rows(bench: Bench) -> list[Row]:
    cores = os.cpu_count() or 1
    half = max(1, cores // 2)
    plans = {
        "one run, 1 thread": (1, 1, 1),
        f"one run, {cores} threads": (1, 1, cores),
        f"2 at once × {half} thread(s)": (2, 2, half),
        f"1 at a time × {cores} threads": (2, 1, cores),
    }
    times: dict[str, list[float]] = {label: [] for label in plans}
    for _ in range(REPEATS):
        for label, (runs, parallel, threads) in plans.items():
            times[label].append(timed_sweep(bench, WEIGHTS[:runs], parallel, threads))
    medians = {label: statistics.median(values) for label, values in times.items()}
    labels = list(plans)
    one_label = min(labels[:2], key=medians.__getitem__)
    other = labels[1] if one_label == labels[0] else labels[0]
    base = medians[one_label]
    rows = []
    for label in labels[2:]:
        value = medians[label]
        rows.append(
            Row(
                "W1",
                f"{MEASURE}: 2-weight sweep wall time, {label} (median of {len(times[label])})",
                f"{value:.1f} s",
                f"{base:.1f} s ({one_label}; {other}: {medians[other]:.1f} s)",
                value / base,
                f"≤ {SWEEP_TARGET:g}×",
                value / base <= SWEEP_TARGET,
            )
        )
    return rows


def two_runs(bench: Bench, label: str) -> list[RunConfig]:
    """W1 runs with the sweep's two weights, planned long enough to train through a measure."""
    workload = bench.workloads["W1"]
    return [
        workload.config(bench.run_name(f"{label}-w{weight:g}"), bench.device, {"objective.weight": weight, "train.epochs": 200})
        for weight in WEIGHTS
    ]


def key_rows(bench: Bench) -> list[Row]:
    presses = bench.pick(20, 60)
    configs = two_runs(bench, "keys")
    idle = asyncio.run(latencies(bench, [], presses))
    loaded = asyncio.run(latencies(bench, configs, presses))
    value, base = percentile(loaded, 0.95), percentile(idle, 0.95)
    return [
        Row(
            "W1",
            f"{MEASURE}: key → frame while 2 runs train, p95 of {len(loaded)} keys",
            f"{value * 1000:.0f} ms",
            f"{base * 1000:.0f} ms (no run)",
            value / base,
            f"≤ {KEYS_TARGET_P95 * 1000:.0f} ms",
            value <= KEYS_TARGET_P95,
        )
    ]


def cursor_rows(bench: Bench) -> list[Row]:
    presses = bench.pick(20, 60)
    configs = two_runs(bench, "cursor")
    loaded, idle = asyncio.run(cursor_latencies(bench, configs, presses))
    rows = []
    for label, quantile in (("p50", 0.50), ("p95", 0.95)):
        value, base = percentile(loaded, quantile), percentile(idle, quantile)
        rows.append(
            Row(
                "W1",
                f"{MEASURE}: cursor → readout while 2 runs train, {label} of {len(loaded)} keys",
                f"{value * 1000:.0f} ms",
                f"{base * 1000:.0f} ms (the runs stopped)",
                value / base,
                f"≤ {KEYS_TARGET_P95 * 1000:.0f} ms" if label == "p95" else "–",
                value <= KEYS_TARGET_P95 if label == "p95" else None,
            )
        )
    return rows


def attach_row(bench: Bench) -> Row:
    delays = asyncio.run(attach_delays(bench, bench.pick(20, 60)))
    value = percentile(delays, 0.95)
    return Row(
        "W1",
        f"{MEASURE}: attach, metrics line → app's series, p95 of {len(delays)} lines",
        f"{value * 1000:.0f} ms",
        f"median {statistics.median(delays) * 1000:.0f} ms",
        None,
        f"≤ {ATTACH_TARGET_P95:g} s",
        value <= ATTACH_TARGET_P95,
    )


class LineStamps(threading.Thread):
    """Stamps each complete line of ``path`` when it lands (polling the size)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.stamps, self.done = path, [], threading.Event()

    def run(self) -> None:
        seen = 0
        while not self.done.wait(0.002):
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                continue
            now = time.perf_counter()
            lines = data.count(b"\n")
            if lines > seen:
                self.stamps.extend([now] * (lines - seen))
                seen = lines


async def attach_delays(bench: Bench, lines: int) -> list[float]:
    """Per step line of a headless W1 run: when the app's series held it, minus when it landed in the file."""
    from tui.app import ExplorerApp

    checkpoints = bench.scratch / bench.run_name("attach")
    name = "headless"
    workload = bench.workloads["W1"]
    app = ExplorerApp(checkpoints=str(checkpoints), device=bench.device)
    async with app.run_test(size=APP_SIZE) as pilot:
        await pilot.pause(1.0)  # the app is up and following an empty folder
        stamps = LineStamps(checkpoints / name / "metrics.jsonl")
        stamps.start()
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from engine.cli.main import main; sys.exit(main())",
                "train",
                "--preset",
                "paper",
                "--corpus",
                *workload.paths,
                "--loss",
                "mse",
                "--regularizer",
                "kl",
                "--weight",
                "10",
                "--epochs",
                "200",
                "--log-every",
                "5",
                "--device",
                bench.device,
                "--checkpoints",
                str(checkpoints),
                "--name",
                name,
                "--json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await wait_until(lambda: app.session.get(name) is not None, "the headless run to appear", timeout=120)
            first_seen = time.perf_counter()
            run = app.session.get(name)
            shown: list[float] = []
            while len(shown) < lines + 5:
                count = len(run.series.get("train_loss", []))
                shown.extend([time.perf_counter()] * (count - len(shown)))
                await asyncio.sleep(0.005)
        finally:
            Controller(checkpoints).stop(name)
            process.wait(timeout=120)
            stamps.done.set()
    # Step lines only: the app's train_loss series takes exactly the step lines, in order.
    step_stamps = [
        stamp
        for stamp, line in zip(stamps.stamps, (checkpoints / name / "metrics.jsonl").read_text().splitlines(), strict=False)
        if '"kind": "step"' in line
    ]
    # Lines written before the app first saw the run arrive with that first read: not counted.
    return [seen - landed for landed, seen in zip(step_stamps, shown, strict=False) if landed > first_seen]
