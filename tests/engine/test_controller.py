"""The run controller: placement, a parallel sweep through real trainer processes, stop and resume through the folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.errors import UserError
from engine.jobs.controller import Controller
from engine.jobs.executor import JobSpec, LocalExecutor
from engine.jobs.placement import Slot, parse_parallel, plan_slots
from engine.runs import protocol
from engine.runs.checkpoint import RunDirectory
from engine.training.trainer import Trainer
from tests.conftest import record_json, tiny_config
from tests.engine.test_protocol import CLI, wait_until

# -- placement ----------------------------------------------------------------------------------------


def test_cpu_runs_get_one_core_each_and_never_oversubscribe():
    assert plan_slots("cpu", None, 3, cpus=2) == [Slot("cpu", 1), Slot("cpu", 1)]
    assert plan_slots("cpu", 1, 3, cpus=2) == [Slot("cpu", 2)]
    assert plan_slots("auto", None, 1, cpus=16, cuda_count=0) == [Slot("cpu", 16)]
    assert plan_slots("cpu", 8, 3, cpus=2) == [Slot("cpu", 1)] * 3  # never more slots than runs


def test_cuda_runs_all_start_at_once_spread_over_the_devices():
    assert [slot.device for slot in plan_slots("auto", None, 4, cpus=16, cuda_count=2)] == [
        "cuda:0",
        "cuda:1",
        "cuda:0",
        "cuda:1",
    ]
    assert [slot.device for slot in plan_slots("cuda:1", None, 2, cpus=16, cuda_count=2)] == ["cuda:1", "cuda:1"]
    assert all(slot.threads == 8 for slot in plan_slots("cuda:0,cuda:1", 2, 4, cpus=16, cuda_count=2))


@pytest.mark.parametrize(
    ("device", "parallel", "message"),
    [
        ("cuda", None, "no CUDA GPU"),
        ("cuda:3", None, "does not exist"),
        ("gpu", None, "is not a device"),
        ("cpu,cuda:0", None, "mixes cpu"),
    ],
)
def test_bad_devices_are_one_sentence(device, parallel, message):
    with pytest.raises(UserError, match=message):
        plan_slots(device, parallel, 2, cpus=2, cuda_count=1 if device == "cuda:3" or "," in device else 0)


@pytest.mark.parametrize("text", ["0", "-1", "two", ""])
def test_parallel_must_be_auto_or_a_positive_count(text):
    with pytest.raises(UserError, match="--parallel"):
        parse_parallel(text)
    assert parse_parallel("auto") is None and parse_parallel("3") == 3


# -- a sweep through real trainer processes --------------------------------------------------------------


class CountingExecutor(LocalExecutor):
    """Local processes, counting how many are alive whenever one more starts."""

    def __init__(self):
        self.jobs = []
        self.most_alive = 0

    def launch(self, spec: JobSpec):
        alive = sum(job.poll() is None for job in self.jobs) + 1
        self.most_alive = max(self.most_alive, alive)
        job = super().launch(spec)
        self.jobs.append(job)
        return job


def metric_lines(checkpoints, name):
    return RunDirectory(checkpoints, name).read_metrics()


def test_a_parallel_sweep_runs_two_at_a_time_and_matches_runs_trained_alone(tiny_corpus, tmp_path):
    configs = [
        tiny_config(f"w{weight:g}", tiny_corpus, objective__regularizer="kl", objective__weight=weight, train__epochs=2)
        for weight in (0.0, 1.0, 10.0)
    ]
    executor = CountingExecutor()
    controller = Controller(tmp_path / "sweep", executor)
    names = controller.queue(configs)
    assert [controller.runs.view(name).status for name in names] == ["queued"] * 3
    seen: list[tuple[str, str]] = []
    statuses = controller.run_queue(
        names, parallel=2, device="cpu", report=lambda name, status, slot: seen.append((name, status))
    )
    assert statuses == dict.fromkeys(names, "finished")
    assert executor.most_alive == 2 and len(executor.jobs) == 3
    assert seen[:2] == [("w0", "training"), ("w1", "training")]  # the third waited for a free slot
    assert not any((tmp_path / "sweep" / name / protocol.REQUEST_FILE).exists() for name in names)

    alone = tmp_path / "alone"
    for config in configs:
        assert type(list(Trainer.new(config, alone).events())[-1]).__name__ == "RunFinished"
        swept, single = metric_lines(tmp_path / "sweep", config.name), metric_lines(alone, config.name)
        assert [(line["kind"], line["step"]) for line in swept] == [(line["kind"], line["step"]) for line in single]
        for a, b in zip(swept, single, strict=True):
            measured = [key for key in b if isinstance(b[key], float) and key not in ("wall_s", "pairs_per_s")]  # timing differs
            assert {key: a[key] for key in measured} == pytest.approx({key: b[key] for key in measured}, rel=1e-5, abs=1e-7)


def test_a_taken_explicit_name_is_refused_and_a_default_one_renamed(tiny_corpus, tmp_path):
    controller = Controller(tmp_path)
    assert controller.queue([tiny_config("same", tiny_corpus)]) == ["same"]
    assert controller.queue([tiny_config("same", tiny_corpus)]) == ["same-2"]
    with pytest.raises(UserError, match="already exists"):
        controller.queue([tiny_config("same", tiny_corpus)], rename=False)


# -- stop and resume through the folder ------------------------------------------------------------------------


def long_config(name, corpus):
    return tiny_config(name, corpus, train__epochs=400)


def test_stop_from_the_cli_saves_a_checkpoint_and_resume_trains_on(tiny_corpus, tmp_path):
    controller = Controller(tmp_path)
    (name,) = controller.start([long_config("long", tiny_corpus)], parallel=1, device="cpu")
    try:
        wait_until(
            lambda: controller.runs.view(name).status == "training" and controller.runs.view(name).record is not None,
            "the run to train",
        )
        listed = json.loads(
            subprocess.run([*CLI, "runs", "--checkpoints", str(tmp_path), "--json"], capture_output=True, text=True).stdout
        )
        assert listed[0]["run"] == name and listed[0]["alive"] and listed[0]["device"] == "cpu" and listed[0]["pid"]
        stopped = subprocess.run([*CLI, "stop", name, "--checkpoints", str(tmp_path)], capture_output=True, text=True)
        assert stopped.returncode == 0 and "saves a checkpoint" in stopped.stdout
        wait_until(lambda: controller.runs.view(name).status == "stopped", "the run to stop")
        record = controller.runs.view(name).record
        assert record.status == "stopped" and record.weights_file and (tmp_path / name / record.weights_file).is_file()

        again = subprocess.run([*CLI, "stop", name, "--checkpoints", str(tmp_path)], capture_output=True, text=True)
        assert again.returncode == 2 and "is stopped, not training" in again.stderr

        assert "resumes on cpu" in controller.resume(name, device="cpu")
        wait_until(
            lambda: controller.runs.view(name).alive and controller.runs.view(name).step > record.step,
            "the resumed run to train on",
        )
        controller.stop(name)
        wait_until(
            lambda: controller.runs.view(name).status == "stopped" and not controller.runs.view(name).alive,
            "the resumed run to stop",
        )
        assert record_json(tmp_path, name)["step"] > record.step
    finally:
        for view in controller.runs.views():
            if view.alive:
                protocol.request_stop(tmp_path / view.name)
        wait_until(lambda: not any(view.alive for view in controller.runs.views()), "every trainer to end")


@pytest.mark.slow
def test_a_queued_run_asked_to_stop_never_starts_and_can_be_resumed(tiny_corpus, tmp_path):
    controller = Controller(tmp_path)
    names = controller.queue([tiny_config("first", tiny_corpus), tiny_config("second", tiny_corpus)])
    assert "will not start" in controller.stop("second")
    assert controller.runs.view("second").status == "stopped"
    statuses = controller.run_queue(names, parallel=1, device="cpu")
    assert statuses == {"first": "finished", "second": "stopped"}
    assert not (tmp_path / "second" / protocol.RECORD_FILE).exists()
    controller.resume("second", device="cpu")
    wait_until(lambda: controller.runs.view("second").status == "finished", "the resumed queued run to finish")


def test_a_runner_that_cannot_place_its_runs_marks_them_failed(tiny_corpus, tmp_path):
    controller = Controller(tmp_path)
    names = controller.queue([tiny_config("nowhere", tiny_corpus)])
    with pytest.raises(UserError, match="not a device"):
        controller.run_queue(names, device="tpu")
    view = controller.runs.view("nowhere")
    assert view.status == "failed" and "not a device" in view.message


def test_the_worker_refuses_a_folder_without_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "engine.jobs.worker", "--checkpoints", str(tmp_path), "--device", "cpu", "empty"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "neither a saved run nor a queued one" in done.stdout


@pytest.mark.parametrize("name", ["nope", "../elsewhere", ""])
def test_stop_names_an_unknown_run_in_one_sentence(name, tmp_path, capsys):
    from engine.cli.main import main

    (tmp_path / "elsewhere").mkdir()
    assert main(["stop", name, "--checkpoints", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert "No run named" in err and err.count("\n") == 1
