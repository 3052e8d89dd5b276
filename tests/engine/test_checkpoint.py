"""Runs on disk: safetensors + JSON only, atomic saves, clear refusals of damaged or foreign runs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

import engine.runs.checkpoint as checkpoint
from engine.errors import UserError
from engine.lm.corpus import load_corpus
from engine.runs.checkpoint import FORMAT_VERSION, RunDirectory, list_runs, load_run
from engine.runs.protocol import PROTOCOL_FILES
from engine.training.events import CheckpointSaved, RunFailed, RunFinished
from engine.training.trainer import Trainer
from tests.conftest import record_json, tiny_config

PROBE = torch.tensor([[5, 17, 2, 40, 3]])


def weights_path(checkpoints: Path, name: str) -> Path:
    return checkpoints / name / record_json(checkpoints, name)["weights_file"]


def outputs(run) -> torch.Tensor:
    with torch.no_grad():
        return run.model(PROBE, last_only=True)


# -- what is on disk ----------------------------------------------------------------------------


def test_a_run_folder_holds_only_json_safetensors_and_protocol_files(saved_runs):
    """The current tensors and those of the save before (kept one save longer for readers)."""
    names = sorted(path.name for path in (saved_runs / "base").iterdir() if path.name not in PROTOCOL_FILES)
    record = record_json(saved_runs, "base")
    assert record["weights_file"] == "model-e1-s5.safetensors" and record["optimizer_file"] == "optimizer-e1-s5.safetensors"
    previous = ["model-e0-s0.safetensors", "optimizer-e0-s0.safetensors"]
    assert names == sorted(["metrics.jsonl", "run.json", record["weights_file"], record["optimizer_file"], *previous])


def test_a_reader_of_the_previous_record_still_finds_its_weights(small_corpus, tmp_path):
    """load_run reads run.json, then the weights it names: a save in between must not delete them."""
    trainer = Trainer.new(tiny_config("racing", small_corpus, train__epochs=3), tmp_path)
    directory = RunDirectory(tmp_path, "racing")
    previous, checked = None, 0
    for event in trainer.events():
        if isinstance(event, CheckpointSaved):
            if previous is not None:
                directory.read_tensors(previous.weights_file, "weights", 2**30)  # read as a slow reader would
                checked += 1
            previous = directory.read_record()
    assert checked == 2
    remaining = sorted(path.name for path in directory.path.glob("model-*.safetensors"))
    assert remaining == ["model-e2-s10.safetensors", "model-e3-s15.safetensors"]


@pytest.mark.parametrize("key", ["weights_file", "optimizer_file"])
def test_tensor_files_are_safetensors_not_pickle(saved_runs, key):
    data = (saved_runs / "base" / record_json(saved_runs, "base")[key]).read_bytes()
    assert not data.startswith(b"PK") and not data.startswith(b"\x80")  # neither torch.save's zip nor a pickle
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_length])
    tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
    assert tensors
    end = max(entry["data_offsets"][1] for entry in tensors.values())
    assert len(data) == 8 + header_length + end
    if key == "weights_file":
        assert header["output.weight"]["shape"] == [300, 16] and header["output.weight"]["dtype"] == "F32"
        assert header["embedding.weight"]["shape"] == [300, 8]


def test_loading_never_unpickles(saved_runs, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    run = load_run(saved_runs, "base")
    assert run.record.status == "finished"


def test_the_record_rebuilds_the_run_from_json_alone(saved_runs, small_corpus):
    record = load_run(saved_runs, "base").record
    corpus = load_corpus(record.config.corpus)
    assert record.format_version == FORMAT_VERSION
    assert record.vocab == corpus.vocab and len(record.vocab) == 300 and record.vocab[:2] == ["<pad>", "<unk>"]
    assert record.corpus_fingerprint == corpus.fingerprint
    assert record.corpus_stats == {"documents": 100, "vocab_size": 300, "pairs": 1075, "longest": 12}
    assert record.train_pairs + record.val_pairs == 1075
    assert set(record.versions) >= {"lm-explorer", "torch", "numpy", "python"} and record.versions["torch"] == torch.__version__
    assert record.config.corpus.paths == [str(small_corpus)]


def test_round_trip_gives_identical_predictions(saved_runs, tmp_path):
    run = load_run(saved_runs, "base")
    with torch.no_grad():
        for parameter in run.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    expected = outputs(run)
    record = run.record.model_copy(update={"weights_file": None, "optimizer_file": None}, deep=True)
    RunDirectory(tmp_path, "base").save(record, run.model, None)
    again = load_run(tmp_path, "base")
    assert torch.equal(outputs(again), expected)
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], tensor), name
    assert again.model.training is False


def test_saving_again_keeps_only_the_current_and_the_previous_tensor_files(runs):
    run = load_run(runs, "base")
    directory = RunDirectory(runs, "base")
    record = run.record.model_copy(deep=True)
    old = record.weights_file
    record.step += 1
    directory.save(record, run.model, None)
    assert record.weights_file == "model-e1-s6.safetensors"
    assert (runs / "base" / old).exists()  # the previous save's, kept one save longer
    assert not (runs / "base" / "model-e0-s0.safetensors").exists()  # the one before that is gone
    assert (runs / "base" / record.optimizer_file).exists()  # not saved this time: the record keeps naming the old one
    assert load_run(runs, "base").record.weights_file == "model-e1-s6.safetensors"


# -- atomic saves -------------------------------------------------------------------------------


def test_a_crash_writing_run_json_leaves_the_previous_checkpoint_loadable(runs, monkeypatch):
    before = load_run(runs, "base")
    expected = outputs(before)
    real_write = checkpoint.atomic_write

    def crash_on_record(path: Path, data: bytes) -> None:
        if path.name == "run.json":
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write", crash_on_record)
    changed = load_run(runs, "base")
    with torch.no_grad():
        for parameter in changed.model.parameters():
            parameter.mul_(-3.0)
    record = changed.record.model_copy(deep=True)
    record.epochs_completed, record.step = 2, 10
    with pytest.raises(UserError, match=r"^Run 'base' could not be saved in .*: the disk is full; .*previous checkpoint is kept"):
        RunDirectory(runs, "base").save(record, changed.model, None)
    monkeypatch.undo()

    after = load_run(runs, "base")
    assert after.record.weights_file == before.record.weights_file and after.record.epochs_completed == 1
    assert torch.equal(outputs(after), expected)


def test_a_crash_inside_the_rename_leaves_no_partial_file(runs, monkeypatch):
    before = record_json(runs, "base")
    real_replace = checkpoint.os.replace

    def failing_replace(source, target):
        if str(target).endswith("run.json"):
            raise OSError(5, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", failing_replace)
    run = load_run(runs, "base")
    record = run.record.model_copy(deep=True)
    record.step += 1
    with pytest.raises(UserError, match=r"could not be saved .*: input/output error"):
        RunDirectory(runs, "base").save(record, run.model, None)
    monkeypatch.undo()
    assert not [path.name for path in (runs / "base").iterdir() if path.name.endswith(".tmp")]
    assert record_json(runs, "base") == before
    assert load_run(runs, "base").record.step == 5


def test_a_training_crash_at_the_epoch_save_keeps_the_last_epoch(runs, monkeypatch):
    expected = outputs(load_run(runs, "base"))
    real_write = checkpoint.atomic_write
    crashes = []

    def crash_once_on_record(path: Path, data: bytes) -> None:
        if path.name == "run.json" and not crashes:
            crashes.append(path)
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write", crash_once_on_record)
    events = list(Trainer.resume(runs, "base", epochs=2).events())
    monkeypatch.undo()
    assert crashes and isinstance(events[-1], RunFailed) and events[-1].user_error
    assert "the disk is full" in events[-1].message and "previous checkpoint is kept" in events[-1].message
    run = load_run(runs, "base")
    assert run.record.epochs_completed == 1
    assert torch.equal(outputs(run), expected)
    # and the run is not lost: it resumes from epoch 1
    resumed = list(Trainer.resume(runs, "base", epochs=2).events())
    assert isinstance(resumed[-1], RunFinished)
    assert load_run(runs, "base").record.epochs_completed == 2


def test_a_metrics_line_cut_short_by_a_crash_is_skipped(runs):
    lines_before = load_run(runs, "base").metrics
    with (runs / "base" / "metrics.jsonl").open("a") as file:
        file.write('{"kind": "step", "step": 6, "train_lo')
    assert load_run(runs, "base").metrics == lines_before
    assert [line["kind"] for line in lines_before].count("epoch") == 1


# -- damaged and foreign runs -------------------------------------------------------------------


def test_a_label_smoothing_run_saved_before_epsilon_had_its_field_loads_and_resumes(small_corpus, tmp_path):
    config = tiny_config(
        "ls", small_corpus, objective__loss="ce", objective__regularizer="label-smoothing", objective__epsilon=0.1
    )
    assert isinstance(list(Trainer.new(config, tmp_path).events())[-1], RunFinished)
    record = record_json(tmp_path, "ls")
    assert record["config"]["objective"] == {
        "loss": "ce",
        "loss_param": None,
        "regularizer": "label-smoothing",
        "weight": 0.0,
        "epsilon": 0.1,
    }
    record["config"]["objective"] = {
        "loss": "ce",
        "loss_param": None,
        "regularizer": "label-smoothing",
        "weight": 0.1,
    }  # as saved then
    (tmp_path / "ls" / "run.json").write_text(json.dumps(record), encoding="utf-8")
    old = load_run(tmp_path, "ls").record.config.objective
    assert (old.epsilon, old.weight) == (0.1, 0.0)
    assert isinstance(list(Trainer.resume(tmp_path, "ls", epochs=2).events())[-1], RunFinished)
    assert record_json(tmp_path, "ls")["config"]["objective"]["epsilon"] == 0.1


def test_a_missing_run(runs):
    with pytest.raises(UserError, match=rf"^No run named 'nope' in '{runs}'; 'lm-explorer runs' lists the saved runs\.$"):
        load_run(runs, "nope")


def test_a_corrupt_run_json(runs):
    (runs / "base" / "run.json").write_text("this is not json")
    with pytest.raises(UserError, match=r"Run 'base' is corrupt \(run.json is not valid JSON"):
        load_run(runs, "base")


def test_a_truncated_run_json(runs):
    path = runs / "base" / "run.json"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(UserError, match=r"Run 'base' is corrupt .*remove or restore"):
        load_run(runs, "base")


def test_a_run_json_missing_a_field(runs):
    data = record_json(runs, "base")
    del data["vocab"]
    (runs / "base" / "run.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"Run 'base' is corrupt \(run.json field vocab"):
        load_run(runs, "base")


def test_a_missing_run_json(runs):
    (runs / "base" / "run.json").unlink()
    with pytest.raises(UserError, match=r"Run 'base' has no run.json; it is not a complete run"):
        load_run(runs, "base")


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_another_format_version_is_refused(runs, version):
    data = record_json(runs, "base")
    data["format_version"] = version
    (runs / "base" / "run.json").write_text(json.dumps(data))
    with pytest.raises(
        UserError, match=rf"saved in checkpoint format {version!r}, but this lm-explorer reads format {FORMAT_VERSION}"
    ):
        load_run(runs, "base")


def test_a_truncated_weights_file(runs):
    path = weights_path(runs, "base")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"Run 'base' has a truncated or corrupt weights file"):
        load_run(runs, "base")


def test_a_weights_file_cut_inside_its_header(runs):
    path = weights_path(runs, "base")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(UserError, match=r"truncated or corrupt weights file"):
        load_run(runs, "base")


def test_a_missing_weights_file(runs):
    weights_path(runs, "base").unlink()
    with pytest.raises(UserError, match=r"Run 'base' is missing its weights file 'model-e1-s5.safetensors'"):
        load_run(runs, "base")


def test_weights_that_do_not_fit_the_config(runs):
    data = record_json(runs, "base")
    data["config"]["model"]["hidden_size"] = 32
    (runs / "base" / "run.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="has weights that do not fit its configuration"):
        load_run(runs, "base")


def test_list_runs_shows_damaged_runs_with_their_problem(runs):
    (runs / "base" / "run.json").write_text("{")
    (runs / "half-made").mkdir()
    (runs / ".hidden").mkdir()
    (runs / "stray.txt").write_text("not a run")
    listings = {item.name: item for item in list_runs(runs)}
    assert set(listings) == {"base", "linear", "half-made"}
    assert listings["linear"].record is not None and listings["linear"].problem is None
    assert listings["base"].record is None and "not valid JSON" in listings["base"].problem
    assert listings["half-made"].record is None and "has no run.json" in listings["half-made"].problem


def test_list_runs_newest_first(runs):
    for name, updated in (("base", "2031-01-01T00:00:00+00:00"), ("linear", "2030-01-01T00:00:00+00:00")):
        data = record_json(runs, name)
        data["updated"] = updated
        (runs / name / "run.json").write_text(json.dumps(data))
    assert [item.name for item in list_runs(runs)] == ["base", "linear"]
    data = record_json(runs, "linear")
    data["updated"] = "2032-01-01T00:00:00+00:00"
    (runs / "linear" / "run.json").write_text(json.dumps(data))
    assert [item.name for item in list_runs(runs)] == ["linear", "base"]
    assert list_runs(runs / "absent") == []


def test_a_record_nested_deeper_than_any_written_is_refused_and_a_long_flat_vocabulary_is_read(saved_runs, tmp_path):
    import shutil

    shutil.copytree(saved_runs, tmp_path / "runs")
    path = tmp_path / "runs" / "base" / "run.json"
    raw = json.loads(path.read_text())
    deep: list = []
    for _ in range(checkpoint.MAX_JSON_DEPTH + 2):
        deep = [deep]
    path.write_text(json.dumps({**raw, "corpus_sources": ["lee.txt", deep]}))
    with pytest.raises(UserError, match="nested deeper than"):
        RunDirectory(tmp_path / "runs", "base").read_record()
    path.write_text(json.dumps({**raw, "vocab": raw["vocab"] + [f"w{i}" for i in range(100_000)]}))
    assert len(RunDirectory(tmp_path / "runs", "base").read_record().vocab) == len(raw["vocab"]) + 100_000
