"""The app's bookkeeping without a screen: run states from engine events, plot series, cells."""

from __future__ import annotations

from pathlib import Path

from engine.config import build_run_config
from engine.events import (
    CheckpointSaved,
    EpochMetrics,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepMetrics,
)
from engine.generate import Alternative, Continuation, GenerationStep
from tui.session import PALETTE, Session, saved_status
from tui.widgets.generation import cell_text, markdown_cell
from tui.widgets.plots import downsample

CONFIG = build_run_config("r", overrides={"model.head": "linear", "objective.loss": "mse", "train.epochs": 2})
STUDY = {"entropy": "study", "kl": "study"}


def started(start_step: int = 0) -> RunStarted:
    return RunStarted("r", CONFIG, "cpu", 50, 400, 100, steps_per_epoch=10, total_steps=20, start_step=start_step, definitions=STUDY)


def test_events_drive_status_progress_series_and_checkpoint_versions():
    run = Session().add("r", CONFIG)
    assert (run.status, run.has_checkpoint) == ("queued", False)
    run.apply(started())
    assert run.status_text == "training 0%" and run.has_checkpoint and run.definitions == STUDY
    run.apply(StepMetrics("r", 5, 20, 0.5, {"train_loss": 2.0, "train_entropy": 3.0, "train_kl": 1.0, "train_accuracy": 0.1}))
    run.apply(EpochMetrics("r", 1, 10, 20, {"val_loss": 1.5, "entropy": 2.5, "kl": 0.9, "accuracy": 0.2, "distinct_predictions": 40},
                           STUDY, collapsed=False))
    run.apply(CheckpointSaved("r", Path("/x"), 1.0))
    assert run.status_text == "training 50%" and run.epoch == 1.0 and run.checkpoint_version == 2
    assert run.series == {"train_loss": [(0.5, 2.0)], "train_entropy": [(0.5, 3.0)], "train_kl": [(0.5, 1.0)],
                          "val_loss": [(1.0, 1.5)], "entropy": [(1.0, 2.5)], "kl": [(1.0, 0.9)]}
    assert run.metrics["accuracy"] == 0.2
    run.apply(RunFinished("r", {"val_loss": 1.2, "accuracy": 0.3}))
    assert (run.status, run.progress, run.metrics["val_loss"]) == ("finished", 1.0, 1.2)


def test_final_events_set_the_status_and_keep_the_reason():
    for event, status in ((RunStopped("r", 7, 0.7), "stopped"), (RunDiverged("r", 3, "loss became non-finite at step 3"), "diverged"),
                          (RunFailed("r", "Corpus path 'x' does not exist.", user_error=True), "failed")):
        run = Session().add("r", CONFIG)
        run.apply(started())
        run.apply(event)
        assert run.status == status
    assert run.message == "Corpus path 'x' does not exist."


def test_saved_history_fills_the_same_series_as_live_events():
    run = Session().add("r", CONFIG, history_loaded=False)
    run.load_history([{"kind": "step", "step": 2, "epoch": 0.2, "train_loss": 4.0, "train_entropy": 1.0, "train_kl": 2.0},
                      {"kind": "epoch", "step": 10, "epoch": 1, "train_loss": 3.5, "val_loss": 3.0, "entropy": 0.5, "kl": 1.5}], STUDY)
    assert run.history_loaded and run.definitions == STUDY
    assert run.series["train_loss"] == [(0.2, 4.0)]  # epoch lines' running means are not training windows
    assert run.series["val_loss"] == [(1.0, 3.0)] and run.series["kl"] == [(1.0, 1.5)]


def test_session_numbers_and_colors_runs_in_order():
    session = Session()
    first, second = session.add("a", CONFIG), session.add("b", CONFIG, shown=False)
    session.remove("a")
    third = session.add("c", CONFIG)
    assert [run.number for run in (first, second, third)] == [1, 2, 3]
    assert [run.color for run in (first, second, third)] == list(PALETTE[:3])
    assert session.shown == [third]
    assert saved_status("training") == "stopped" and saved_status("diverged") == "diverged"


def test_downsample_keeps_ends_and_bounds_the_count():
    points = [(float(i), float(i * i)) for i in range(1000)]
    kept = downsample(points, 50)
    assert len(kept) == 50 and kept[0] == points[0] and kept[-1] == points[-1]
    assert downsample(points[:10], 50) == points[:10]


def test_cells_flag_unknown_seed_words_and_errors():
    step = GenerationStep("york", 0.5, 2.0, [Alternative("york", 0.5), Alternative("city", 0.2), Alternative("times", 0.1)])
    continuation = Continuation("new yrok", "r", "greedy", ["yrok"], [step, step])
    assert str(cell_text(continuation)) == "⚠ unknown: yrok york york"
    assert markdown_cell(continuation) == "[unknown: yrok] york york"
    assert str(cell_text("Seed text 'zzz' has no word that run 'r' knows.")).startswith("⚠ Seed text")
    assert str(cell_text(None)) == "…" and markdown_cell(None) == ""
