"""The training process on its own: its pipe protocol, and that it saves when the app goes away."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

from engine.checkpoint import load_run
from engine.events import FINAL_EVENTS, RunStarted, RunStopped, StepMetrics
from tests.conftest import tiny_config
from tui.trainer_process import COMMAND, Refused, TrainerJob


def start(job: TrainerJob) -> subprocess.Popen:
    process = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))})
    pickle.dump(job, process.stdin)
    process.stdin.flush()
    return process


def events_until(process: subprocess.Popen, wanted) -> list:
    events = []
    while not events or not isinstance(events[-1], wanted):
        events.append(pickle.load(process.stdout))
    return events


def test_closing_the_pipe_stops_the_run_with_a_checkpoint(tiny_corpus, tmp_path):
    """What happens when the app dies without a word: stdin closes, the run stops and saves."""
    config = tiny_config("orphan", tiny_corpus, train__epochs=500)
    process = start(TrainerJob("orphan", config, False, tmp_path, "cpu"))
    started = events_until(process, StepMetrics)
    assert isinstance(started[0], RunStarted)
    process.stdin.close()
    rest = events_until(process, FINAL_EVENTS)
    assert isinstance(rest[-1], RunStopped)
    assert process.wait(timeout=60) == 0
    assert load_run(tmp_path, "orphan").record.status == "stopped"


def test_a_taken_name_is_refused_with_the_engines_sentence(tiny_corpus, tmp_path):
    (tmp_path / "taken").mkdir()
    process = start(TrainerJob("taken", tiny_config("taken", tiny_corpus), False, tmp_path, "cpu"))
    (refused,) = events_until(process, Refused)
    assert "already exists" in refused.message
    process.stdin.close()
    assert process.wait(timeout=60) == 0
