"""Measure 11, a checkpoints folder of 1,000 runs: listing, the app's first frame, its idle CPU, key → frame.

The folder: one real one-epoch run of a tiny model on the embedded corpus's first sentences, trained here,
copied into 1,000 run folders (each ``run.json`` renamed to its folder). Baseline for every figure: the same
measure on a folder holding one of those runs.

- ``lm-explorer runs``: wall time of the console script from spawn to exit (median). Target ≤ 1 s.
- The app's first frame: process start → first full frame on an 80 × 24 pseudo-terminal
  (:func:`bench.startup.app_on_pty`). Target ≤ 2 s.
- Idle CPU: the app's process (all its threads) over ``IDLE_S`` seconds, from ``SETTLE_S`` seconds after its
  first frame, as a share of one core (``/proc/PID/stat`` user + system ticks). Target ≤ 5 %.
- Key → frame p95 with all 1,000 listed (:func:`bench.tui_latency.latencies`, headless, no run training). Target ≤ 150 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.context import Bench
from bench.startup import app_on_pty
from bench.table import Row, seconds, skipped
from bench.timing import paired_medians
from bench.tui_harness import tui_available
from bench.tui_latency import latencies, percentile

MEASURE = "11 a thousand runs"
RUNS = 1000
SETTLE_S = 5.0
IDLE_S = 10.0
TARGETS = {"runs": 1.0, "frame": 2.0, "idle": 0.05, "keys": 0.150}


def measure(bench: Bench) -> list[Row]:
    many, one = bench.scratch / "thousand-runs", bench.scratch / "one-run"
    make_folders(bench, many, one)
    repeats = bench.pick(2, 5)
    script = str(Path(sys.executable).with_name("lm-explorer"))
    listing, single = paired_medians(
        lambda: timed_run([script, "runs", "--checkpoints", str(many)]),
        lambda: timed_run([script, "runs", "--checkpoints", str(one)]),
        repeats,
    )
    rows = [row("lm-explorer runs", listing, single, "runs")]
    if not tui_available():
        return [*rows, skipped("–", f"{MEASURE}: the app", "tui.app not available")]
    frame, frame_one = paired_medians(lambda: app_on_pty_frame(many), lambda: app_on_pty_frame(one), repeats)
    rows.append(row("the app's first frame", frame, frame_one, "frame"))
    idle, idle_one = idle_share(many), idle_share(one)
    rows.append(
        Row(
            "–",
            f"{MEASURE}: the app's idle CPU, share of a core",
            f"{idle:.1%}",
            f"{idle_one:.1%} (1 run)",
            idle / max(idle_one, 1e-9),
            f"≤ {TARGETS['idle']:.0%}",
            idle <= TARGETS["idle"],
        )
    )
    presses = bench.pick(20, 60)
    keys = asyncio.run(latencies(bench, [], presses, checkpoints=many, listed=RUNS))
    keys_one = asyncio.run(latencies(bench, [], presses, checkpoints=one, listed=1))
    rows.append(row(f"key → frame p95 of {len(keys)} keys", percentile(keys, 0.95), percentile(keys_one, 0.95), "keys"))
    return rows


def row(what: str, value: float, baseline: float, target: str) -> Row:
    return Row(
        "–",
        f"{MEASURE}: {what}",
        seconds(value),
        f"{seconds(baseline)} (1 run)",
        value / baseline,
        f"≤ {seconds(TARGETS[target])}",
        value <= TARGETS[target],
    )


def make_folders(bench: Bench, many: Path, one: Path) -> None:
    """One real tiny run trained into ``one``, and copied ``RUNS`` times into ``many``."""
    from engine.config.presets import build_run_config
    from engine.lm.corpus import embedded_corpus_path, split_sentences
    from engine.training.trainer import Trainer

    documents = embedded_corpus_path().read_text(encoding="utf-8").splitlines()
    corpus = bench.scratch / "thousand-corpus.txt"
    corpus.write_text("\n".join([s for doc in documents for s in split_sentences(doc)][:100]) + "\n", encoding="utf-8")
    tiny = {"corpus.paths": [str(corpus)], "model.embedding_dim": 8, "model.hidden_size": 16, "train.epochs": 1}
    config = build_run_config("r0000", overrides={**tiny, "train.device": "cpu", "train.batch_size": 16})
    final = list(Trainer.new(config, one).events())[-1]
    assert type(final).__name__ == "RunFinished", final
    for index in range(RUNS):
        name = f"r{index:04d}"
        shutil.copytree(one / "r0000", many / name, ignore=shutil.ignore_patterns("lock", "heartbeat", "*.log"))
        record = many / name / "run.json"
        saved = json.loads(record.read_text())
        saved["name"] = saved["config"]["name"] = name
        record.write_text(json.dumps(saved))


def timed_run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def app_on_pty_frame(checkpoints: Path) -> float:
    with app_on_pty(["tui.launcher", "--checkpoints", str(checkpoints)]) as (_, _, seconds_to_frame):
        return seconds_to_frame


def idle_share(checkpoints: Path) -> float:
    """The app's CPU time over ``IDLE_S`` s of wall time, ``SETTLE_S`` s after its first frame (its terminal drained)."""
    with app_on_pty(["tui.launcher", "--checkpoints", str(checkpoints)]) as (child, terminal, _):
        drain(terminal, SETTLE_S)
        before, start = cpu_seconds(child.pid), time.perf_counter()
        drain(terminal, IDLE_S)
        return (cpu_seconds(child.pid) - before) / (time.perf_counter() - start)


def drain(terminal: int, duration: float) -> None:
    """Read what the app writes for ``duration`` seconds, so that it never waits on a full terminal."""
    deadline = time.perf_counter() + duration
    while (left := deadline - time.perf_counter()) > 0:
        if select.select([terminal], [], [], min(left, 0.2))[0]:
            try:
                os.read(terminal, 65536)
            except OSError:
                return


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
