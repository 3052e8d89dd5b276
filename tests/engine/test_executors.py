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
    checkpoints = tmp_path / "runs"
    grid = ["--regularizer", "kl", "--weights", "0,1", "--name", "q", "--parallel", "1"]
    detach = subprocess.run(
        [*CLI, "sweep", "--corpus", str(small_corpus), *TINY, *grid, "--checkpoints", str(checkpoints), "--detach", "--json"],
        capture_output=True,
        text=True,
    )
    names = json.loads(detach.stdout)["runs"]
    controller = Controller(checkpoints)
    wait_until(lambda: controller.runs.view(names[0]).status == "training", "the first run to train")
    runner = protocol.read_json(checkpoints / names[-1] / protocol.REQUEST_FILE)["owner"]["pid"]
    os.kill(runner, signal.SIGKILL)
    wait_until(lambda: controller.runs.view(names[-1]).status == "interrupted", "the queued runs to read interrupted")
    meanwhile = listed(checkpoints)
    assert meanwhile[names[-1]]["status"] == "interrupted" and not meanwhile[names[-1]]["alive"]
    assert meanwhile[names[0]]["status"] in ("training", "finished")  # its trainer is its own process: it trains on
    wait_until(lambda: controller.runs.view(names[0]).status == "finished", "the first run to finish")

    resumed = subprocess.run(
        [*CLI, "sweep", "--resume-queue", "--parallel", "1", "--device", "cpu", "--checkpoints", str(checkpoints)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert {name: run["status"] for name, run in listed(checkpoints).items()} == dict.fromkeys(names, "finished")
