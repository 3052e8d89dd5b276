"""The run-directory protocol: statuses and their transitions, the writer's lock, liveness, stop requests, names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.runs import protocol
from engine.runs.checkpoint import RunDirectory
from engine.runs.view import RunReader
from engine.safe_io import read_regular
from engine.training.events import RunDiverged, RunFailed, RunFinished, RunStopped, StepMetrics, final_status
from engine.training.trainer import Trainer
from tests.conftest import record_json, tiny_config

CLI = [sys.executable, "-c", "import sys; from engine.cli.main import main; sys.exit(main())"]


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_train(corpus: Path, checkpoints: Path, *extra: str) -> subprocess.Popen:
    """A headless ``lm-explorer train`` long enough to be caught training."""
    return subprocess.Popen(
        [
            *CLI,
            "train",
            "--corpus",
            str(corpus),
            "--embedding-dim",
            "8",
            "--hidden-size",
            "16",
            "--epochs",
            "400",
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--log-every",
            "2",
            "--checkpoints",
            str(checkpoints),
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def training(checkpoints: Path, name: str) -> bool:
    """The run has saved at least once and its writer holds the lock."""
    return (checkpoints / name / "run.json").is_file() and protocol.lock_held(checkpoints / name)


# -- statuses ---------------------------------------------------------------------------------------


def test_every_status_has_its_transitions_and_final_events_map_to_final_statuses():
    assert set(protocol.TRANSITIONS) == set(protocol.STATUSES)
    assert final_status(RunFinished("r", {})) == "finished"
    assert final_status(RunStopped("r", 3, 0.5)) == "stopped"
    assert final_status(RunDiverged("r", 3, "why")) == "diverged"
    assert final_status(RunFailed("r", "why", user_error=True)) == "failed"
    with pytest.raises(ValueError):
        final_status(StepMetrics("r", 1, 2, 0.5, {}))
    assert protocol.can_become("training", "interrupted") and not protocol.can_become("finished", "stopped")
    assert {"stopped", "interrupted", "diverged", "failed", "finished"} == protocol.RESUMABLE


@pytest.mark.parametrize(
    ("saved", "requested", "writer", "owner", "stop", "expected"),
    [
        ("training", None, True, False, False, "training"),
        ("stopped", None, True, False, False, "training"),
        ("training", None, False, False, False, "interrupted"),
        ("finished", None, False, False, False, "finished"),
        ("stopped", "queued", False, True, False, "queued"),
        ("stopped", "queued", False, False, False, "stopped"),
        (None, None, True, False, False, "training"),
        (None, None, False, False, False, None),
        (None, "queued", False, True, False, "queued"),
        (None, "queued", False, True, True, "stopped"),
        (None, "queued", False, False, False, "interrupted"),
        (None, "failed", False, False, False, "failed"),
    ],
)
def test_status_is_derived_in_one_place(saved, requested, writer, owner, stop, expected):
    assert protocol.derive_status(saved, requested, writer, owner, stop) == expected


# -- names and files ----------------------------------------------------------------------------------


def test_reserved_names_are_unique_across_processes_started_together(tmp_path):
    code = "import sys; from pathlib import Path; from engine.runs.protocol import reserve; print(reserve(Path(sys.argv[1]), 'same'))"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    names = [process.communicate()[0].strip() for process in processes]
    assert sorted(names) == ["same", "same-2", "same-3"]


def test_three_trains_without_a_name_in_the_same_second_get_three_runs(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "ck"
    processes = [
        subprocess.Popen(
            [
                *CLI,
                "train",
                "--corpus",
                str(tiny_corpus),
                "--embedding-dim",
                "8",
                "--hidden-size",
                "16",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--checkpoints",
                str(checkpoints),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    names = {json.loads(out)["run"] for out, _ in outputs}
    assert len(names) == 3
    assert all(record_json(checkpoints, name)["status"] == "finished" for name in names)


def test_protocol_files_refuse_symlinks_and_fifos(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("{}")
    (tmp_path / protocol.LOCK_FILE).symlink_to(target)
    with pytest.raises(UserError, match="symbolic link"):
        protocol.RunLock(tmp_path, "r").acquire()
    os.mkfifo(tmp_path / protocol.HEARTBEAT_FILE)
    assert protocol.read_beat(tmp_path) is None  # a FIFO is refused at once, it does not hang the reader
    with pytest.raises(UserError, match="is a FIFO"):
        read_regular(tmp_path / protocol.HEARTBEAT_FILE, "heartbeat", 1024)
    assert target.read_text() == "{}"


def test_a_run_that_fails_before_its_first_save_leaves_no_folder(tmp_path):
    config = tiny_config("never", tmp_path / "missing.txt")
    final = list(Trainer.new(config, tmp_path / "ck").events())[-1]
    assert isinstance(final, RunFailed) and final.user_error
    assert not (tmp_path / "ck" / "never").exists()


# -- one writer, liveness, stop ---------------------------------------------------------------------


def test_a_second_trainer_on_the_same_run_exits_2_naming_the_first(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "ck"
    first = start_train(tiny_corpus, checkpoints, "--name", "dup")
    try:
        wait_until(lambda: training(checkpoints, "dup"), "the first trainer to save")
        second = start_train(tiny_corpus, checkpoints, "--name", "dup")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2
        assert f"process {first.pid}" in err and "lm-explorer stop dup" in err and "Traceback" not in err
        resumed = subprocess.run(
            [*CLI, "train", "--resume", "dup", "--checkpoints", str(checkpoints)], capture_output=True, text=True
        )
        assert resumed.returncode == 2 and f"process {first.pid}" in resumed.stderr
        protocol.request_stop(checkpoints / "dup")
        first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130
    assert record_json(checkpoints, "dup")["status"] == "stopped"
    assert not (checkpoints / "dup" / protocol.STOP_FILE).exists()  # the request was honoured and removed


def test_a_killed_trainer_reads_as_interrupted_and_resumes(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "ck"
    process = start_train(tiny_corpus, checkpoints, "--name", "killed")
    try:
        wait_until(lambda: training(checkpoints, "killed"), "the trainer to save")
        live = protocol.liveness(checkpoints / "killed")
        assert live.alive and live.holder.pid == process.pid and live.beat is not None and live.beat.device == "cpu"
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert record_json(checkpoints, "killed")["status"] == "training"  # what the dead writer left
    assert not protocol.liveness(checkpoints / "killed").alive

    assert RunReader(checkpoints).view("killed").status == "interrupted"
    trainer = Trainer.resume(checkpoints, "killed", epochs=1 + RunDirectory(checkpoints, "killed").read_record().epochs_completed)
    assert isinstance(list(trainer.events())[-1], RunFinished)
    assert record_json(checkpoints, "killed")["status"] == "finished"


def test_a_settled_runs_view_is_kept_until_its_files_change(saved_runs, tmp_path, monkeypatch):
    import shutil

    import engine.runs.view as view_module

    checkpoints = tmp_path / "runs"
    shutil.copytree(saved_runs, checkpoints)
    reader = RunReader(checkpoints)
    first = reader.view("base")
    assert first.status == "finished" and reader.view("base") is first  # nothing changed: the same view
    protocol.request_stop(checkpoints / "base")  # a new file in the folder
    assert reader.view("base") is not first
    record = checkpoints / "base" / protocol.RECORD_FILE
    record.write_text(record.read_text().replace('"status": "finished"', '"status": "stopped"', 1))  # in place
    assert reader.view("base").status == "stopped"
    again = reader.view("base")
    monkeypatch.setattr(view_module, "SETTLED_REFRESH_S", 0.0)
    assert reader.view("base") is not again  # re-read once its time is up
