"""Choosing an executor (``--executor``/``--address``), a node that does not see the folder, and what a killed runner
leaves for ``sweep --resume-queue``."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from engine.cli.main import main
from engine.errors import UserError
from engine.jobs.controller import Controller
from engine.jobs.executor import JobSpec, LocalExecutor
from engine.jobs.executors import check_address, executor_for
from engine.jobs.ray_executor import unseen_folder
from engine.runs import protocol
from tests.conftest import tiny_config
from tests.engine.test_protocol import CLI, wait_until

TINY = ["--embedding-dim", "8", "--hidden-size", "16", "--batch-size", "16", "--device", "cpu", "--epochs", "1"]
LONG = [*TINY[:-1], "10000"]  # runs that end when the test stops them


def test_an_address_is_auto_or_host_and_port():
    assert check_address("auto") == "auto" and check_address("127.0.0.1:6379") == "127.0.0.1:6379"
    for text in ("127.0.0.1", "host:0", "host:70000", ":6379", "host:port"):
        with pytest.raises(UserError, match="is not auto or HOST:PORT"):
            check_address(text)


def test_an_address_without_the_ray_executor_is_refused():
    assert isinstance(executor_for("local", None), LocalExecutor)
    with pytest.raises(UserError, match="give it with --executor ray"):
        executor_for("local", "auto")


def test_a_bad_address_on_the_cli_is_one_sentence_and_exit_2(small_corpus, tmp_path, capsys):
    sweep = ["sweep", "--corpus", str(small_corpus), "--regularizer", "kl", "--weights", "1", "--checkpoints", str(tmp_path)]
    code = main([*sweep, "--executor", "ray", "--address", "nowhere"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--address 'nowhere' is not auto or HOST:PORT" in err


def test_a_node_that_does_not_see_the_folder_says_so_in_one_sentence(tiny_corpus, tmp_path):
    (name,) = Controller(tmp_path).queue([tiny_config("seen", tiny_corpus)])
    assert unseen_folder(JobSpec((name,), tmp_path, "cpu", 1)) is None
    problem = unseen_folder(JobSpec(("seen",), tmp_path / "elsewhere", "cpu", 1))
    assert problem is not None and "must mount the same checkpoints folder at the same path" in problem


def test_resume_queue_without_weights_or_with_nothing_left(tmp_path, capsys):
    assert main(["sweep", "--checkpoints", str(tmp_path)]) == 2
    assert "A sweep needs something to vary: give --weights, --seeds or --vary" in capsys.readouterr().err
    assert main(["sweep", "--resume-queue", "--checkpoints", str(tmp_path)]) == 0
    assert "no queued or interrupted runs" in capsys.readouterr().err


def listed(checkpoints) -> dict[str, dict]:
    runs = subprocess.run([*CLI, "runs", "--checkpoints", str(checkpoints), "--json"], capture_output=True, text=True)
    return {run["run"]: run for run in json.loads(runs.stdout)}


def test_a_runner_killed_with_sigkill_leaves_queued_runs_that_resume_queue_starts(small_corpus, tmp_path):
    """The runner dies while its first run trains and the second waits; resume-queue starts the second.

    Both runs are far longer than the test (LONG epochs) and end when it stops them, so the kill lands in that state
    however loaded the machine: with one epoch, a first run that finished between the test seeing it train and the
    kill let the runner start the second, which then trained on without it and never read as interrupted.
    """
    checkpoints = tmp_path / "runs"
    grid = ["--regularizer", "kl", "--weights", "0,1", "--name", "q", "--parallel", "1"]
    detach = subprocess.run(
        [*CLI, "sweep", "--corpus", str(small_corpus), *LONG, *grid, "--checkpoints", str(checkpoints), "--detach", "--json"],
        capture_output=True,
        text=True,
    )
    first, queued = json.loads(detach.stdout)["runs"]
    controller = Controller(checkpoints)
    wait_until(lambda: controller.runs.view(first).status == "training", "the first run to train")
    runner = protocol.read_json(checkpoints / queued / protocol.REQUEST_FILE)["owner"]["pid"]
    os.kill(runner, signal.SIGKILL)
    wait_until(lambda: controller.runs.view(queued).status == "interrupted", "the queued run to read interrupted")
    meanwhile = listed(checkpoints)
    assert meanwhile[queued]["status"] == "interrupted" and not meanwhile[queued]["alive"]
    assert meanwhile[first]["status"] == "training"  # its trainer is its own process: it trains on
    assert not (checkpoints / queued / protocol.RECORD_FILE).exists()  # and the runner never started the other
    protocol.request_stop(checkpoints / first)
    wait_until(lambda: controller.runs.view(first).status == "stopped", "the first run to stop")

    resumed = subprocess.Popen(
        [*CLI, "sweep", "--resume-queue", "--parallel", "1", "--device", "cpu", "--checkpoints", str(checkpoints)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: controller.runs.view(queued).step > 0, "resume-queue to start the queued run")
        protocol.request_stop(checkpoints / queued)
        _, err = resumed.communicate(timeout=300)
    finally:
        resumed.kill()
    assert "Traceback" not in err
    assert {name: run["status"] for name, run in listed(checkpoints).items()} == {first: "stopped", queued: "stopped"}
