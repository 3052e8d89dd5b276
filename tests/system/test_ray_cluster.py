"""Sweeps on a real Ray cluster of two one-CPU nodes on loopback (127.0.0.1 only), sharing one checkpoints folder.

One cluster serves the module (it takes 10–20 s to start on two cores) and is shut down by it. The sweep runner
is a real ``lm-explorer sweep`` process or the app's detached runner; the trainers are the ordinary trainer
command as Ray tasks; a node is removed with ``ray.cluster_utils.Cluster.remove_node`` (its processes killed).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading

import pytest

from engine.jobs.controller import Controller
from engine.runs import protocol
from engine.runs.checkpoint import RunDirectory
from tests.conftest import tiny_config, wait_for
from tests.engine.test_protocol import CLI, wait_until

# Before Ray is imported (it reads this once): Ray then resolves "this machine" to 127.0.0.1, not its network address.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="ray is not installed; pip install 'lm-explorer[cluster]' runs these tests")
from ray.cluster_utils import Cluster  # noqa: E402  (after the skip)

from engine.jobs.ray_executor import RayExecutor  # noqa: E402

LOOPBACK = "127.0.0.1"
NODE_LINE = re.compile(r"^ray: job .* on node ([0-9a-f]+) ", re.MULTILINE)


@pytest.fixture(scope="module")
def cluster():
    """A head and one worker node, one CPU each, bound to loopback."""
    node_args = {"num_cpus": 1, "node_ip_address": LOOPBACK}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    cluster.add_node(**node_args)
    assert cluster.address.startswith(f"{LOOPBACK}:")
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def nodes_of(checkpoints, name) -> list[str]:
    """The Ray nodes the run's jobs ran on, in order (from its trainer log)."""
    return NODE_LINE.findall((checkpoints / name / protocol.LOG_FILE).read_text())


def tiny_options(corpus) -> list[str]:
    return [
        "--corpus",
        str(corpus),
        "--embedding-dim",
        "8",
        "--hidden-size",
        "16",
        "--batch-size",
        "16",
        "--log-every",
        "2",
    ]


def test_a_sweep_on_ray_spreads_four_runs_over_both_nodes(cluster, small_corpus, tmp_path):
    checkpoints = tmp_path / "shared"
    result = subprocess.run(
        [
            *CLI,
            "sweep",
            *tiny_options(small_corpus),
            "--regularizer",
            "kl",
            "--weights",
            "0,1,2,3",
            "--epochs",
            "1",
            "--name",
            "grid",
            "--checkpoints",
            str(checkpoints),
            "--executor",
            "ray",
            "--address",
            cluster.address,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    names = ["grid-w0", "grid-w1", "grid-w2", "grid-w3"]
    views = [Controller(checkpoints).runs.view(name) for name in names]
    assert [view.status for view in views] == ["finished"] * 4
    assert all(view.record is not None and view.record.epochs_completed == 1 for view in views)
    used = {node for name in names for node in nodes_of(checkpoints, name)}
    assert len(used) == 2, used  # two one-CPU nodes, two jobs at a time: one on each


def test_a_task_that_raised_fails_its_run_with_the_exception_and_is_not_taken_for_a_lost_node(cluster, tiny_corpus, tmp_path):
    checkpoints = tmp_path / "shared"
    controller = Controller(checkpoints, RayExecutor(cluster.address))
    [name] = controller.queue([tiny_config("linked", tiny_corpus)])
    (checkpoints / name / protocol.LOG_FILE).symlink_to(tmp_path / "elsewhere.log")  # the task refuses to write through it
    assert controller.run_queue([name], device="cpu") == {name: "failed"}
    message = controller.runs.view(name).message or ""
    assert message.startswith("Its Ray task raised UserError: Run 'linked' file 'trainer.log' is a symbolic link"), message
    assert not (tmp_path / "elsewhere.log").exists()


@pytest.mark.slow  # about 50 s on two loaded cores
def test_a_run_on_a_lost_node_reads_interrupted_and_resumes_on_the_other(cluster, tiny_corpus, tmp_path):
    """The worker node is removed once its run has saved an epoch; Ray runs that job again on the head, which resumes it."""
    checkpoints = tmp_path / "shared"
    controller = Controller(checkpoints, RayExecutor(cluster.address))
    configs = [tiny_config(name, tiny_corpus, train__epochs=6) for name in ("first", "second")]
    names = controller.queue(configs)
    ended: dict = {}
    runner = threading.Thread(target=lambda: ended.update(controller.run_queue(names, device="cpu")), daemon=True)
    runner.start()
    worker = next(iter(cluster.worker_nodes))

    def on_worker():
        return (
            next((name for name in names if worker.node_id in nodes_of(checkpoints, name)), None)
            if all((checkpoints / name / protocol.LOG_FILE).exists() for name in names)
            else None
        )

    wait_until(lambda: on_worker() is not None, "a run to start on the worker node", timeout=120)
    lost = on_worker()
    directory = RunDirectory(checkpoints, lost)
    wait_until(lambda: directory.exists() and directory.read_record().epochs_completed >= 1, "its first epoch saved", 120)
    saved_epochs = directory.read_record().epochs_completed
    cluster.remove_node(worker, allow_graceful=False)
    try:
        wait_until(lambda: controller.runs.view(lost).status == "interrupted", "the lost run to read interrupted", 60)
        runner.join(timeout=240)
        assert not runner.is_alive(), "the sweep did not end"
        assert ended == dict.fromkeys(names, "finished")
        record = directory.read_record()
        epochs = [line["epoch"] for line in directory.read_metrics() if line["kind"] == "epoch"]
        assert record.epochs_completed == 6 and epochs == [1, 2, 3, 4, 5, 6]  # none counted twice, none lost
        first_node, second_node = nodes_of(checkpoints, lost)[:2]
        assert first_node == worker.node_id and second_node == cluster.head_node.node_id
        to_go = [int(n) for n in re.findall(r"(\d+) batches to go", (checkpoints / lost / protocol.LOG_FILE).read_text())]
        per_epoch = record.steps_per_epoch
        assert len(to_go) == 2 and to_go[1] <= to_go[0] - saved_epochs * per_epoch  # the retry started from the checkpoint
    finally:
        cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)  # the next test has two nodes again


@pytest.mark.slow  # about 80 s on two loaded cores
@pytest.mark.asyncio
async def test_the_app_launches_on_ray_shows_all_four_live_and_a_stop_is_honoured(cluster, tiny_corpus, tmp_path):
    from tui.app import ExplorerApp

    checkpoints = tmp_path / "shared"
    app = ExplorerApp(
        corpus_paths=[str(tiny_corpus)], checkpoints=str(checkpoints), device="cpu", executor=RayExecutor(cluster.address)
    )
    configs = [  # the last one starts once two have ended, and trains until it is stopped
        tiny_config(f"app-w{weight}", tiny_corpus, objective__regularizer="kl", objective__weight=weight, train__epochs=epochs)
        for weight, epochs in ((0, 5), (1, 5), (2, 5), (3, 400))
    ]
    names = [config.name for config in configs]
    seen: dict[str, set[str]] = {name: set() for name in names}
    stopped = names[3]
    async with app.run_test(size=(120, 40)) as pilot:
        app.start_runs(configs)

        def watched(condition):
            for name in names:
                seen[name].add(app.run_status(name))
            return condition()

        await wait_for(pilot, lambda: watched(lambda: app.run_status(stopped) == "training"), "the last run to train", 240)
        stop = subprocess.run(
            [*CLI, "stop", stopped, "--checkpoints", str(checkpoints)], capture_output=True, text=True, timeout=60
        )
        assert stop.returncode == 0 and "stops after its current batch" in stop.stdout, stop
        await wait_for(
            pilot,
            lambda: watched(lambda: all(app.run_status(name) not in ("queued", "training") for name in names)),
            "every run to end",
            300,
        )
        assert all("training" in statuses for statuses in seen.values()), seen  # the app saw each one train
        assert [app.run_status(name) for name in names] == ["finished", "finished", "finished", "stopped"]
        assert all(app.session.get(name).points("train_loss") for name in names)  # their live plots were fed
    assert len({node for name in names for node in nodes_of(checkpoints, name)}) == 2


@pytest.mark.slow  # about 60 s on two loaded cores
def test_reproduce_trains_its_grid_on_ray_and_a_second_call_reuses_it(cluster, small_corpus, tmp_path):
    out = tmp_path / "reproduction"
    command = [*CLI, "reproduce", "--corpus", str(small_corpus), "--epochs", "1", "--runs", "control,entropy-1e-11"]
    command += ["--out", str(out), "--device", "cpu", "--executor", "ray", "--address", cluster.address]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    runs = out / "runs"
    names = sorted(path.name for path in runs.iterdir())
    assert names == ["control-s0", "entropy-1e-11-s0"] and all(nodes_of(runs, name) for name in names)
    assert (out / "report.md").is_file()
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert all(len(nodes_of(runs, name)) == 1 for name in names)  # reused, not trained again
