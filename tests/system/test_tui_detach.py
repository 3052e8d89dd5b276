"""Runs outlive the app and its terminal, and the app attaches to any run in the folder (Pilot and tmux)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time

import pytest

from engine.jobs.controller import Controller
from engine.runs import protocol
from engine.runs.view import RunReader
from tests.conftest import tiny_config
from tests.engine.test_protocol import start_train, training
from tests.system import test_tui_tmux
from tests.system.test_tui_tmux import Tmux, console_script, running, start_training
from tui.app import ExplorerApp
from tui.screens.confirm_quit import ConfirmQuit


async def wait_for(pilot, condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


def wait_until(condition, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def stop_everything(checkpoints) -> None:
    """Leave no trainer behind: ask every alive run to stop and wait for them."""
    controller = Controller(checkpoints)
    for view in controller.runs.views():
        if view.status in ("training", "queued"):
            protocol.request_stop(checkpoints / view.name)
    wait_until(lambda: not any(view.status in ("training", "queued") for view in controller.runs.views()), "every run to end")


def step_lines(checkpoints, name) -> int:
    path = checkpoints / name / "metrics.jsonl"
    return sum('"kind": "step"' in line for line in path.read_text().splitlines()) if path.exists() else 0


# -- Pilot: attach, stop a run the app did not start, interrupted runs --------------------------------------------------


@pytest.mark.asyncio
async def test_a_headless_run_appears_live_and_the_app_stops_it(tiny_corpus, tmp_path):
    process = start_train(tiny_corpus, tmp_path, "--name", "headless")
    try:
        app = ExplorerApp(corpus_paths=[str(tiny_corpus)], checkpoints=str(tmp_path), device="cpu")
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(
                pilot,
                lambda: app.session.get("headless") is not None and app.run_status("headless") == "training",
                "the headless run to appear training",
            )
            run = app.session.get("headless")
            assert run.shown and run.device == "cpu"
            await wait_for(pilot, lambda: len(run.series.get("train_loss", [])) >= 3, "its live points")
            seen = len(run.series["train_loss"])
            await wait_for(pilot, lambda: len(run.series["train_loss"]) > seen, "more points as the trainer appends them")
            await wait_for(pilot, lambda: "headless" in app.runs_table.rows, "its row in the runs list")  # x stops the row's run
            toasts: list[str] = []
            app.notify = lambda message, **kwargs: toasts.append(message)  # type: ignore[method-assign]
            await pilot.press("f5", "x")  # the app did not start it: the stop goes through the run folder
            await wait_for(
                pilot, lambda: app.run_status("headless") == "stopped", lambda: f"the run to stop (the app said: {toasts})"
            )
            assert len(run.series["train_loss"]) == step_lines(tmp_path, "headless")  # every line written was followed
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()


@pytest.mark.asyncio
async def test_a_killed_trainer_shows_interrupted_and_resumes_from_the_app(tiny_corpus, tmp_path):
    process = start_train(tiny_corpus, tmp_path, "--name", "victim")
    try:
        wait_until(lambda: training(tmp_path, "victim"), "the trainer to save")
        app = ExplorerApp(corpus_paths=[str(tiny_corpus)], checkpoints=str(tmp_path), device="cpu")
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(
                pilot, lambda: app.session.get("victim") is not None and app.run_status("victim") == "training", "the run"
            )
            process.send_signal(signal.SIGKILL)
            process.wait()
            await wait_for(pilot, lambda: app.run_status("victim") == "interrupted", "the run to read as interrupted")
            step = RunReader(tmp_path).view("victim").record.step
            await pilot.press("f5", "r")
            await wait_for(
                pilot,
                lambda: app.run_status("victim") == "training" and app.session.get("victim").progress > 0,
                "the resumed run to train",
            )
            await wait_for(
                pilot, lambda: RunReader(tmp_path).view("victim").step > step, "the resumed run to go past its checkpoint"
            )
    finally:
        process.kill()
        stop_everything(tmp_path)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_sweep_from_the_app_trains_side_by_side_and_outlives_it(tiny_corpus, tmp_path):
    configs = [
        tiny_config(f"side-{weight:g}", tiny_corpus, objective__regularizer="kl", objective__weight=weight, train__epochs=15)
        for weight in (0.0, 10.0)
    ]
    app = ExplorerApp(corpus_paths=[str(tiny_corpus)], checkpoints=str(tmp_path), device="cpu")
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            app.start_runs(configs)
            await wait_for(
                pilot, lambda: all(app.run_status(c.name) == "training" for c in configs), "both runs to train at once"
            )
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), "the quit question")
            await pilot.press("enter")  # the default: leave them training
            deadline = time.monotonic() + 30
            while app.return_code is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        controller = Controller(tmp_path)
        assert all(controller.runs.view(c.name).status in ("training", "finished") for c in configs)
        wait_until(
            lambda: all(controller.runs.view(c.name).status == "finished" for c in configs), "both runs to finish without the app"
        )

        again = ExplorerApp(corpus_paths=[str(tiny_corpus)], checkpoints=str(tmp_path), device="cpu")
        async with again.run_test(size=(120, 36)) as pilot:
            await wait_for(
                pilot, lambda: all(again.session.get(c.name) is not None for c in configs), "the relaunched app to list them"
            )
            assert all(again.run_status(c.name) == "finished" for c in configs)
    finally:
        stop_everything(tmp_path)


# -- tmux: the terminal goes away, the runs do not ------------------------------------------------------------------------

app_in_tmux = test_tui_tmux.open_app  # the real app in a private tmux server: (tmux, checkpoints)
needs_tmux = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux; .ci/run installs it)"
)


@needs_tmux
def test_hangup_leaves_the_run_training_and_a_relaunched_app_sees_it_finished(app_in_tmux, tiny_corpus):
    tmux, checkpoints = app_in_tmux
    try:
        start_training(tmux, epochs=30)  # long enough to be seen training on an idle machine (3 epochs took a second)
        pid = tmux.pane_pid()
        tmux.kill()  # the terminal goes away: the app gets SIGHUP
        wait_until(lambda: not running(pid), "the app to end after its terminal hung up", timeout=60)
        (view,) = RunReader(checkpoints).views()
        assert view.status in ("training", "finished")
        wait_until(lambda: RunReader(checkpoints).view(view.name).status == "finished", "the run to finish without the app")

        again = Tmux(
            [console_script(), "--corpus", str(tiny_corpus), "--checkpoints", str(checkpoints), "--device", "cpu"], "again"
        )
        try:
            again.wait_for(lambda s: view.name[:20] in s and "finished" in s, "the relaunched app to show the finished run")
        finally:
            again.kill()
    finally:
        stop_everything(checkpoints)


@needs_tmux
def test_a_headless_train_in_one_window_appears_in_the_app_in_another(app_in_tmux, tiny_corpus):
    tmux, checkpoints = app_in_tmux
    command = [
        console_script(),
        "train",
        "--corpus",
        str(tiny_corpus),
        "--embedding-dim",
        "8",
        "--hidden-size",
        "16",
        "--epochs",
        "400",
        "--device",
        "cpu",
        "--checkpoints",
        str(checkpoints),
        "--name",
        "from-shell",
    ]
    shell = Tmux(command, "shell")
    try:
        tmux.wait_for(lambda s: "from-shell" in s and "training" in s, "the headless run in the app's runs list")
        screen = tmux.wait_for(lambda s: "from-shell" in s and "cpu" in s, "its device in the runs list")
        assert "from-shell" in screen
    finally:
        shell.kill()
        stop_everything(checkpoints)
