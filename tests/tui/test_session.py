"""The app's bookkeeping without a screen: run states from the folder's views and metric lines, plot series, cells."""

from __future__ import annotations

import json
import math

import pytest

from engine.config.presets import build_run_config
from engine.generate import Alternative, Continuation, GenerationStep
from engine.runs.view import RunView
from tui.plotting import downsample
from tui.session import PALETTE, Session
from tui.widgets.generation import cell_text, markdown_cell

CONFIG = build_run_config("r", overrides={"model.head": "linear", "objective.loss": "mse", "train.epochs": 2})
STUDY = {"entropy": "study", "kl": "study"}


class Record:
    """The few fields of a saved record the session reads."""

    def __init__(self, status: str, weights_file: str, step: int, metrics: dict):
        self.status, self.weights_file, self.step, self.metrics = status, weights_file, step, metrics
        self.epochs_completed, self.batch_in_epoch, self.steps_per_epoch, self.config = step // 10, step % 10, 10, CONFIG

    @property
    def epoch_progress(self) -> float:
        return self.epochs_completed + self.batch_in_epoch / self.steps_per_epoch


def test_a_training_run_whose_lines_are_not_followed_takes_its_epoch_from_the_trainers_progress():
    run = Session().add("r", CONFIG)  # hidden: no metrics lines folded in, only the folder's views
    record = Record("training", "model-e1-s10.safetensors", 10, {})
    run.observe(RunView("r", "training", CONFIG, record, alive=True, pid=7, device="cpu", step=15, total_steps=20))
    assert run.epoch == 1.5 and run.status_text == "training 75 % · cpu"  # 15 of 20 batches of 2 epochs
    run.add_lines([{"kind": "step", "step": 12, "epoch": 1.2, "train_loss": 6.0}])  # shown again: older lines never lower it
    assert run.epoch == 1.5


def test_views_drive_status_progress_device_and_checkpoint_versions():
    run = Session().add("r", CONFIG)
    assert (run.status, run.has_checkpoint, run.alive) == ("queued", False, True)
    run.observe(
        RunView(
            "r",
            "training",
            CONFIG,
            Record("training", "model-e0-s0.safetensors", 0, {}),
            alive=True,
            pid=7,
            device="cuda:1",
            step=5,
            total_steps=20,
        )
    )
    assert run.status_text == "training 25 % · cuda:1" and run.checkpoint_version == 1
    run.observe(
        RunView(
            "r",
            "training",
            CONFIG,
            Record("training", "model-e0-s0.safetensors", 0, {}),
            alive=True,
            pid=7,
            device="cuda:1",
            step=10,
            total_steps=20,
        )
    )
    assert run.checkpoint_version == 1  # same weights file: nothing to regenerate
    run.observe(RunView("r", "finished", CONFIG, Record("finished", "model-e2-s20.safetensors", 20, {"val_loss": 1.2})))
    assert (run.status, run.progress, run.metrics, run.epoch, run.checkpoint_version) == (
        "finished",
        1.0,
        {"val_loss": 1.2},
        2.0,
        2,
    )
    assert not run.alive and run.status_text == "finished"
    run.observe(RunView("r", "interrupted", CONFIG, Record("training", "model-e2-s20.safetensors", 20, {}), message=None))
    assert run.status == "interrupted"


def test_metric_lines_fill_the_series_live_and_from_history():
    run = Session().add("r", CONFIG, history_loaded=False)
    history = [
        {"kind": "step", "step": 2, "epoch": 0.2, "train_loss": 4.0, "train_entropy": 1.0, "train_kl": 2.0},
        {"kind": "epoch", "step": 10, "epoch": 1, "train_loss": 3.5, "val_loss": 3.0, "entropy": 0.5, "kl": 1.5},
    ]
    run.load_history(history, STUDY)
    assert run.history_loaded and run.definitions == STUDY
    assert run.points("train_loss") == [(0.2, 4.0)]  # epoch lines' running means are not training windows
    assert run.points("val_loss") == [(1.0, 3.0)] and run.points("kl") == [(1.0, 1.5)]
    run.add_lines(
        [{"kind": "step", "step": 12, "epoch": 1.2, "train_loss": "nan", "train_entropy": 0.9, "train_kl": 1.9}, {"bad": 1}]
    )
    assert run.points("train_entropy") == [(0.2, 1.0), (1.2, 0.9)] and run.points("train_loss") == [(0.2, 4.0)]
    assert run.epoch == 1.2


def test_session_numbers_and_colors_runs_in_order():
    session = Session()
    first, second = session.add("a", CONFIG), session.add("b", CONFIG, shown=False)
    session.remove("a")
    third = session.add("c", CONFIG)
    assert [run.number for run in (first, second, third)] == [1, 2, 3]
    assert [run.color for run in (first, second, third)] == list(PALETTE[:3])
    assert session.shown == [third]


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


def test_points_sit_on_each_x_axis_and_a_resumed_runs_lines_supersede_the_lost_ones():
    run = Session().add("r", CONFIG)
    run.add_lines(
        [
            {"kind": "step", "step": 5, "epoch": 0.5, "train_loss": 4.0},  # written before wall time was recorded
            {"kind": "step", "step": 10, "epoch": 1.0, "train_loss": 3.8, "wall_s": 2.0, "pairs_per_s": 500.0},
            {"kind": "epoch", "step": 10, "epoch": 1, "val_loss": 3.5, "wall_s": 2.5, "pairs_per_s": 400.0},
            {"kind": "step", "step": 15, "epoch": 1.5, "train_loss": 3.6, "wall_s": 3.5, "pairs_per_s": 450.0},
        ]
    )
    assert run.points("train_loss", "step") == [(5, 4.0), (10, 3.8), (15, 3.6)]
    assert run.points("train_loss", "wall") == [(2.0, 3.8), (3.5, 3.6)] and run.pairs_per_s == 450.0
    # killed at step 15, resumed from the checkpoint at step 10: its clock goes on from 2.5 s
    run.add_lines([{"kind": "step", "step": 15, "epoch": 1.5, "train_loss": 3.55, "wall_s": 3.2, "pairs_per_s": 600.0}])
    assert run.points("train_loss", "wall") == [(2.0, 3.8), (3.2, 3.55)] and run.points("val_loss", "wall") == [(2.5, 3.5)]
    run.add_lines([{"kind": "step", "step": 5, "epoch": 0.5, "train_loss": 4.1, "wall_s": 1.0}])  # resumed from the start
    assert run.points("train_loss") == [(0.5, 4.1)] and run.points("val_loss") == [] and run.pairs_per_s == 600.0


def test_a_hidden_run_keeps_its_throughput_and_best_validation_loss_but_no_series(tmp_path):
    from tui.follow import _Tail, read_new_lines

    path = tmp_path / "r" / "metrics.jsonl"
    path.parent.mkdir()
    epochs = [{"kind": "epoch", "step": 10 * e, "epoch": e, "val_loss": loss} for e, loss in ((1, 5.0), (2, 4.5), (3, 4.75))]
    steps = [{"kind": "step", "step": 25, "epoch": 2.5, "pairs_per_s": 120, "train_loss": 1.0}]
    path.write_text("".join(json.dumps(line) + "\n" for line in epochs + steps) + '{"kind": "step", "ste')  # being written
    tail = _Tail()
    run = Session().add("r", CONFIG, shown=False)
    run.note_summary(*read_new_lines(path, tail))
    assert (run.best_val_loss, run.pairs_per_s, run.series) == (4.5, 120.0, {})
    with path.open("a") as file:
        file.write('ep": 40, "epoch": 4, "val_loss": 4.25}\n{"kind": "epoch", "step": 50, "epoch": 5, "val_loss": "nan"}\n')
    run.note_summary(*read_new_lines(path, tail))  # the line that was being written is damaged now: skipped
    assert run.best_val_loss == 4.5
    path.write_text(json.dumps({"kind": "epoch", "step": 10, "epoch": 1, "val_loss": 6.0}) + "\n")  # replaced: start over
    run.note_summary(*read_new_lines(path, tail))
    assert run.best_val_loss == 6.0


def test_the_best_validation_loss_follows_a_rewind(tmp_path):
    run = Session().add("r", CONFIG)
    run.add_lines([{"kind": "epoch", "step": s, "epoch": s / 10, "val_loss": v} for s, v in ((10, 5.0), (20, 3.0))])
    assert run.best_val_loss == 3.0
    run.add_lines([{"kind": "epoch", "step": 20, "epoch": 2.0, "val_loss": 4.0}])  # resumed from epoch 1: epoch 2 again
    assert run.best_val_loss == 4.0


def test_non_finite_values_on_disk_reach_the_series_as_floats(tmp_path):
    """``metrics.jsonl`` stores them as "inf"/"-inf"/"nan"; the app's reader used to drop them."""
    from tui.follow import _Tail, read_new_lines

    path = tmp_path / "r" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_text(
        '{"kind": "epoch", "step": 10, "epoch": 1, "val_loss": 2.5, "kl": 0.1}\n'
        '{"kind": "epoch", "step": 20, "epoch": 2, "val_loss": "inf", "kl": "nan"}\n'
    )
    lines, restart = read_new_lines(path, _Tail())
    run = Session().add("r", CONFIG)
    run.add_lines(lines)
    assert restart and run.points("val_loss") == [(1.0, 2.5), (2.0, math.inf)]
    (_, first), (_, second) = run.points("kl")
    assert first == 0.1 and math.isnan(second)


@pytest.mark.parametrize(
    "text",
    [
        '{"smoothing": ' + "9" * 5000 + "}",
        '{"seeds": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"numbers": {"a": ' + "9" * 400 + "}}",
        "\ufeff{} not json",
    ],
    ids=["5000-digit number", "deep nesting", "huge count", "not json"],
)
def test_a_hostile_memory_file_gives_a_fresh_memory(tmp_path, text):
    from tui.memory import MEMORY_FILE, Memory, load_memory

    (tmp_path / MEMORY_FILE).write_text(text)
    assert load_memory(tmp_path) == Memory()


def test_the_metrics_export_skips_hostile_lines_and_writes_non_finite_values(tmp_path):
    from tui.export import metrics_csv

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.jsonl").write_text(
        '{"kind": "step", "step": 1, "epoch": 0.5, "train_loss": ' + "9" * 5000 + "}\n"
        '{"kind": "epoch", "step": 2, "epoch": 1, "val_loss": "inf", "wall_s": 1.5}\n'
    )
    assert metrics_csv(tmp_path, ["r"]).splitlines() == ["run,kind,step,epoch,wall_s,val_loss", "r,epoch,2,1,1.5,inf"]


def test_the_metrics_export_of_a_resumed_run_holds_its_history_not_the_lines_it_superseded(tiny_corpus, tmp_path):
    """A trainer left after writing a line past its first epoch's checkpoint (what a kill leaves), then resumed."""
    import csv
    import io

    from engine.training.events import EpochMetrics, RunFinished, StepMetrics
    from engine.training.trainer import Trainer
    from tests.conftest import tiny_config
    from tui.export import metrics_csv

    events = Trainer.new(tiny_config("r", tiny_corpus, **{"train.epochs": 2, "train.log_every": 1}), tmp_path).events()
    saved = False
    for event in events:
        if saved and isinstance(event, StepMetrics):
            break  # its line is written; the epoch it belongs to is not saved
        saved = saved or isinstance(event, EpochMetrics)
    events.close()
    assert isinstance(list(Trainer.resume(tmp_path, "r").events())[-1], RunFinished)

    written = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    rows = list(csv.DictReader(io.StringIO(metrics_csv(tmp_path, ["r"]))))
    places = [(row["kind"], int(row["step"])) for row in rows]
    assert len(written) > len(rows) and len(set(places)) == len(places)  # the superseded line is gone, once
    walls = [float(row["wall_s"]) for row in rows]
    assert walls == sorted(walls) and [row["kind"] for row in rows].count("epoch") == 2  # one clock, two epochs


def test_names_sort_naturally_and_what_tells_runs_apart_comes_first():
    """``kl-2`` before ``kl-10`` (digits by value); objective and weight are the columns right after the name."""
    from tui.widgets.runs_table import COLUMNS, natural_key

    names = ["kl-w10", "kl-w2", "ce", "kl-w1e-05", "KL-w3", "kl-w100"]
    assert sorted(names, key=natural_key) == ["ce", "kl-w1e-05", "kl-w2", "KL-w3", "kl-w10", "kl-w100"]
    assert [key for key, _ in COLUMNS][:5] == ["mark", "name", "objective", "weight", "status"]


def test_the_metrics_csv_gives_the_settings_that_differ_among_the_runs_as_columns(tmp_path):
    import csv
    import io

    from tests.conftest import hand_made_metrics, write_hand_made_run
    from tui.export import metrics_csv
    from tui.widgets.setup_form import flat_settings

    configs = {}
    for name, weight in (("kl-2", 2.0), ("kl-10", 10.0)):
        write_hand_made_run(tmp_path, name, epochs=1, objective__regularizer="kl", objective__weight=weight)
        configs[name] = build_run_config(name, None, {"objective.regularizer": "kl", "objective.weight": weight})
    text = metrics_csv(tmp_path, list(configs), {name: flat_settings(config) for name, config in configs.items()})
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:6] == ["run", "objective.weight", "kind", "step", "epoch", "wall_s"]
    assert [(row["run"], row["objective.weight"]) for row in rows] == [("kl-2", "2.0")] * 5 + [("kl-10", "10.0")] * 5
    assert len(rows) == 2 * len(hand_made_metrics(1))


def test_exports_in_the_same_second_get_names_of_their_own_and_a_failed_one_leaves_none(tmp_path, monkeypatch):
    """Two apps saving into one directory in the same second (two served tabs) never write over each other."""
    import threading

    from tui import export

    frozen = export.datetime(2026, 1, 26, 15, 30, 12)
    monkeypatch.setattr(export, "datetime", type("Frozen", (), {"now": staticmethod(lambda: frozen)}))
    names, start = [], threading.Barrier(8)

    def save(number: int) -> None:
        start.wait()
        names.append(export.save_export("metrics", "csv", f"table {number}\n".encode(), tmp_path))

    threads = [threading.Thread(target=save, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stem = "lm-explorer-metrics-20260126-153012"
    assert sorted(path.name for path in names) == sorted([f"{stem}.csv", *(f"{stem}-{n}.csv" for n in range(2, 9))])
    assert sorted(path.read_text() for path in names) == sorted(f"table {number}\n" for number in range(8))

    def refuse(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "atomic_write", refuse)
    with pytest.raises(OSError):
        export.save_export("metrics", "csv", b"lost", tmp_path)
    assert len(list(tmp_path.iterdir())) == 8  # the name it claimed is given back
