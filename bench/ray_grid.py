"""Measure 12, a grid of tiny runs on a local Ray cluster: the scheduler's overhead per run.

The cluster: a head and a worker node of one CPU each on 127.0.0.1 (``ray.cluster_utils.Cluster``), sharing
the bench's scratch folder. The grid: ``runs`` one-epoch runs of a tiny model on the embedded corpus's first
sentences (1,000 in a full pass, 20 with ``--quick``), queued and trained by the controller through
:class:`engine.jobs.ray_executor.RayExecutor`, two at a time (one per node). Baseline: the same grid through
local trainer processes, two at a time, timed in the same run. Overhead per run =
(Ray wall − local wall) × 2 slots ÷ runs. Also: the round trip of 1,000 empty one-CPU Ray tasks, per task.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import TYPE_CHECKING

from bench.context import Bench
from bench.table import Row, seconds, skipped

if TYPE_CHECKING:
    from engine.config.models import RunConfig
    from engine.jobs.controller import Controller

MEASURE = "12 Ray grid of tiny runs"
SLOTS = 2
EMPTY_TASKS = 1000


def measure(bench: Bench) -> list[Row]:
    if importlib.util.find_spec("ray") is None:
        return [skipped("–", MEASURE, "ray is not installed (pip install 'lm-explorer[cluster]')")]
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: "this machine" is 127.0.0.1
    import ray
    from ray.cluster_utils import Cluster

    from engine.jobs.controller import Controller
    from engine.jobs.executor import LocalExecutor
    from engine.jobs.ray_executor import RayExecutor

    runs = bench.pick(20, 1000)
    configs = tiny_configs(bench, runs)
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        on_ray = train(Controller(bench.scratch / "ray-grid", RayExecutor(cluster.address)), configs)
        local = train(Controller(bench.scratch / "local-grid", LocalExecutor()), configs)

        empty = ray.remote(num_cpus=1)(lambda: None)
        start = time.perf_counter()
        ray.get([empty.remote() for _ in range(EMPTY_TASKS)])
        per_task = (time.perf_counter() - start) / EMPTY_TASKS
    finally:
        ray.shutdown()
        cluster.shutdown()
    overhead = (on_ray - local) * SLOTS / runs
    return [
        Row(
            "–",
            f"{MEASURE}: {runs} one-epoch runs, {SLOTS} at a time, on 2 one-CPU nodes",
            seconds(on_ray),
            f"{seconds(local)} (local processes)",
            on_ray / local,
        ),
        Row("–", f"{MEASURE}: scheduler overhead per run", ("−" if overhead < 0 else "") + seconds(abs(overhead)), "–"),
        Row("–", f"{MEASURE}: round trip of {EMPTY_TASKS} empty Ray tasks, per task", seconds(per_task), "–"),
    ]


def tiny_configs(bench: Bench, runs: int) -> list[RunConfig]:
    from engine.config.presets import build_run_config
    from engine.lm.corpus import embedded_corpus_path, split_sentences

    documents = embedded_corpus_path().read_text(encoding="utf-8").splitlines()
    corpus = bench.scratch / "grid-corpus.txt"
    corpus.write_text("\n".join([s for doc in documents for s in split_sentences(doc)][:100]) + "\n", encoding="utf-8")
    tiny = {"corpus.paths": [str(corpus)], "model.embedding_dim": 8, "model.hidden_size": 16, "train.epochs": 1}
    return [
        build_run_config(f"g{index:04d}", overrides={**tiny, "train.device": "cpu", "train.seed": index}) for index in range(runs)
    ]


def train(controller: Controller, configs: list[RunConfig]) -> float:
    """Wall seconds to queue and train ``configs`` through ``controller``, ``SLOTS`` at a time; every run must finish."""
    start = time.perf_counter()
    names = controller.queue(configs)
    statuses = controller.run_queue(names, parallel=SLOTS, device="cpu")
    elapsed = time.perf_counter() - start
    unfinished = [name for name, status in statuses.items() if status != "finished"]
    if unfinished:
        raise RuntimeError(f"{len(unfinished)} of {len(names)} runs did not finish (first: {unfinished[0]})")
    return elapsed
