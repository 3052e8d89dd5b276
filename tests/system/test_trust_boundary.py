"""A run folder is a trust boundary: hostile and damaged folders, bad arguments, full disks, signals.

Each case must end in one sentence and the documented exit code, and touch nothing outside the
run folder. Runs are real (trained by the ``saved_runs`` fixture); the console script is the
installed one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from safetensors.torch import save_file

from engine.runs.checkpoint import load_run
from engine.runs.protocol import PROTOCOL_FILES
from tests.conftest import record_json
from tests.engine.test_cli import run_cli

SCRIPT = Path(sys.executable).parent / "lm-explorer"
TINY = ["--embedding-dim", "8", "--hidden-size", "16", "--batch-size", "16", "--device", "cpu"]


def one_sentence(err: str, *fragments: str) -> None:
    """``err`` ends in exactly one error line holding every fragment; lines before it can only be progress."""
    lines = err.splitlines()
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[-1], err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the run under ``folder`` with its bytes (links as their target text); the lock and heartbeat
    files of the run-folder protocol say who touched it last and are left out."""
    return {
        str(path.relative_to(folder)): (os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if (path.is_symlink() or path.is_file()) and path.name not in PROTOCOL_FILES
    }


def edit_record(runs: Path, name: str, **changes) -> None:
    data = record_json(runs, name)
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    (runs / name / "run.json").write_text(json.dumps(data))


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside every run folder that nothing may read or change."""
    path = tmp_path / "outside.txt"
    path.write_text("precious\n")
    return path


# -- hostile run folders ----------------------------------------------------------------------------------


def test_a_linked_metrics_file_is_neither_appended_to_nor_read(runs, outside, capsys):
    metrics = runs / "base" / "metrics.jsonl"
    metrics.unlink()
    metrics.symlink_to(outside)
    code, out, err = run_cli(capsys, "train", "--resume", "base", "--epochs", "2", "--checkpoints", runs)
    assert code == 2 and out == ""
    one_sentence(err, "Run 'base' file 'metrics.jsonl' is a symbolic link")
    assert outside.read_text() == "precious\n"
    code, _, err = run_cli(capsys, "generate", "base", "--text", "the", "--checkpoints", runs)
    one_sentence(err, "is a symbolic link")
    assert code == 2


@pytest.mark.parametrize("name", ["/etc/passwd", "../../x.safetensors", "../linear/model-e1-s5.safetensors", "/dev/zero"])
def test_tensor_names_in_run_json_must_be_plain_names_inside_the_folder(runs, name, capsys):
    edit_record(runs, "base", weights_file=name)
    code, out, err = run_cli(capsys, "generate", "base", "--text", "the", "--checkpoints", runs)
    assert code == 2 and out == ""
    one_sentence(err, "Run 'base' is corrupt (run.json field weights_file: String should match pattern")


def test_a_weights_file_linked_to_valid_weights_elsewhere_is_refused(runs, capsys):
    record = record_json(runs, "base")
    weights = runs / "base" / record["weights_file"]
    foreign = runs.parent / "foreign.safetensors"
    shutil.copy(weights, foreign)
    weights.unlink()
    weights.symlink_to(foreign)
    code, _, err = run_cli(capsys, "generate", "base", "--text", "the", "--checkpoints", runs)
    assert code == 2
    one_sentence(err, f"Run 'base' file {record['weights_file']!r} is a symbolic link")


@pytest.mark.parametrize("where", ["run.json", "weights"])
def test_a_fifo_in_a_run_folder_does_not_hang_anything(runs, where, capsys):
    record = record_json(runs, "base")
    path = runs / "base" / ("run.json" if where == "run.json" else record["weights_file"])
    path.unlink()
    os.mkfifo(path)
    code, out, err = run_cli(capsys, "runs", "--checkpoints", runs, "--json")
    listing = {item["run"]: item for item in json.loads(out)}
    assert code == 0 and listing["linear"]["record"] is not None  # one bad folder does not block the listing
    if where == "run.json":
        assert "is a FIFO (named pipe)" in listing["base"]["problem"]
    code, _, err = run_cli(capsys, "generate", "base", "--text", "the", "--checkpoints", runs)
    assert code == 2
    one_sentence(err, "is a FIFO (named pipe)")


def test_run_json_as_a_directory(runs, capsys):
    (runs / "base" / "run.json").unlink()
    (runs / "base" / "run.json").mkdir()
    code, _, err = run_cli(capsys, "generate", "base", "--text", "the", "--checkpoints", runs)
    assert code == 2
    one_sentence(err, "Run 'base' file 'run.json' is a directory")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"config__model__num_layers": 100000}, "field config.model.num_layers: Input should be less than or equal to 8"),
        (
            {
                "config__model__hidden_size": 8000,
                "config__model__embedding_dim": 4000,
                "vocab": ["<pad>"] + [f"w{i}" for i in range(1_000_000)],
            },
            "needs about",
        ),
        ({"epochs_completed": -1}, "field epochs_completed: Input should be greater than or equal to 0"),
        ({"prefix_width": 10**12}, "field prefix_width"),
        ({"partial_epoch": {"count": 3, "sums": [1, 2, 3, 4, 5], "predicted": [10**9]}}, "running totals do not fit"),
    ],
)
def test_sizes_and_counts_from_run_json_are_bounded_before_allocation(runs, changes, fragment, capsys):
    edit_record(runs, "base", **changes)
    code, _, err = run_cli(capsys, "generate", "base", "--text", "the", "--checkpoints", runs)
    assert code == 2
    one_sentence(err, "Run 'base'", fragment)


def test_a_step_no_checkpoint_name_can_hold_is_refused_and_the_record_kept(runs, capsys):
    """A step of 10¹³ would make a resume write a tensor file whose name fails the record's own pattern."""
    edit_record(runs, "base", step=10**13)
    before = snapshot(runs / "base")
    for args in (("generate", "base", "--text", "the"), ("train", "--resume", "base", "--epochs", "2")):
        code, out, err = run_cli(capsys, *args, "--checkpoints", runs)
        assert code == 2 and out == ""
        one_sentence(err, "Run 'base' is corrupt (run.json field step: Input should be less than or equal to 999999999999")
    assert snapshot(runs / "base") == before


def test_a_resume_that_would_pass_the_last_nameable_step_is_refused_before_any_write(runs, capsys):
    edit_record(runs, "base", step=10**12 - 2)
    before = snapshot(runs / "base")
    code, out, err = run_cli(capsys, "train", "--resume", "base", "--epochs", "2", "--checkpoints", runs)
    assert code == 2 and out == ""
    one_sentence(err, "Run 'base' would reach step", "beyond the 999,999,999,999 a checkpoint's name can hold")
    assert snapshot(runs / "base") == before


HUGE_INTEGER = "9" * 5000
HOSTILE_METRICS_LINES = {
    "a 5000-digit integer": '{"kind": "step", "step": 1, "epoch": 0.5, "train_loss": ' + HUGE_INTEGER + "}",
    "a 5000-digit step": '{"kind": "step", "step": ' + HUGE_INTEGER + ', "epoch": 0.5}',
    "an integer too large for a float": '{"kind": "step", "step": 1, "epoch": 0.5, "train_loss": 1' + "0" * 400 + "}",
    "a line over 1 MiB": '{"kind": "step", "step": 1, "epoch": 0.5, "pad": "' + "x" * (2 << 20) + '"}',
}


@pytest.mark.parametrize("line", HOSTILE_METRICS_LINES.values(), ids=HOSTILE_METRICS_LINES.keys())
def test_hostile_metrics_lines_are_skipped_and_read_only_commands_rewrite_nothing(runs, line, capsys):
    with (runs / "base" / "metrics.jsonl").open("a") as file:
        file.write(line + "\n")
    good = load_run(runs, "base").metrics
    assert good and all(entry.get("step") != 1 or entry["epoch"] != 0.5 for entry in good)
    before = snapshot(runs / "base")
    for args in (("runs",), ("generate", "base", "--text", "the"), ("train", "--resume", "base")):  # the last: refused
        code, _, err = run_cli(capsys, *args, "--checkpoints", runs)
        assert code == (2 if args[0] == "train" else 0), err
        assert "Traceback" not in err
    one_sentence(err, "Run 'base' already finished its 1 epochs")
    assert snapshot(runs / "base") == before
    code, _, err = run_cli(capsys, "train", "--resume", "base", "--epochs", "2", "--checkpoints", runs, "--json")
    assert code == 0, err
    assert load_run(runs, "base").record.epochs_completed == 2


def test_deeply_nested_run_json(runs, capsys):
    (runs / "base" / "run.json").write_text('{"format_version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _, err = run_cli(capsys, "generate", "base", "--text", "the", "--checkpoints", runs)
    assert code == 2
    one_sentence(err, "Run 'base' is corrupt (run.json is not valid JSON")


def test_damaged_metrics_lines_are_skipped_not_fatal(runs, capsys):
    good = load_run(runs, "base").metrics
    with (runs / "base" / "metrics.jsonl").open("ab") as file:
        file.write(
            b'5\n"text"\n[1, 2]\n\xff\xfe not utf-8\n{"kind": "step", "step": "seven", "epoch": 1}\n'
            b'{"kind": "epoch", "step": -3, "epoch": 1}\n{"kind": "step", "step": 999, "epoch": 0.5, "train_loss": "high"}\n'
        )
    metrics = load_run(runs, "base").metrics
    assert metrics[: len(good)] == good
    assert metrics[len(good) :] == [{"kind": "step", "step": 999, "epoch": 0.5}]  # the mistyped value is dropped
    code, _, _ = run_cli(capsys, "generate", "base", "--text", "the", "--checkpoints", runs)
    assert code == 0


def test_a_refused_resume_of_a_damaged_run_leaves_it_as_it_was(runs, capsys):
    record = record_json(runs, "base")
    optimizer = runs / "base" / record["optimizer_file"]
    save_file({"0.nonsense": __import__("torch").zeros(3)}, optimizer, metadata={"param_groups": '[{"params": [0]}]'})
    before = snapshot(runs / "base")
    code, out, err = run_cli(capsys, "train", "--resume", "base", "--epochs", "2", "--checkpoints", runs)
    assert code == 2 and out == ""
    one_sentence(err, "Run 'base' has an optimizer state that does not fit its model")
    assert snapshot(runs / "base") == before


def test_resuming_a_copied_folder_trains_the_copy_and_leaves_the_original(runs, capsys):
    shutil.copytree(runs / "base", runs / "copy")
    original = snapshot(runs / "base")
    code, _, err = run_cli(capsys, "train", "--resume", "copy", "--epochs", "2", "--checkpoints", runs, "--json")
    assert code == 0, err
    assert snapshot(runs / "base") == original
    copy = load_run(runs, "copy")
    assert copy.record.name == "copy" and copy.record.config.name == "copy" and copy.record.epochs_completed == 2


def test_an_infinite_metric_is_stored_faithfully_and_divergence_exits_3(small_corpus, tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "train",
        "--corpus",
        small_corpus,
        *TINY,
        "--epochs",
        "2",
        "--lr",
        "1e36",
        "--checkpoints",
        tmp_path,
        "--name",
        "wild",
    )
    assert code == 3, err
    record = load_run(tmp_path, "wild").record
    assert record.status == "diverged" and "non-finite at step" in record.message
    code, out, _ = run_cli(capsys, "runs", "--checkpoints", tmp_path)
    assert code == 0 and "diverged" in out


def test_non_finite_metrics_round_trip_through_both_files(runs):
    from engine.runs.checkpoint import RunDirectory

    directory = RunDirectory(runs, "base")
    record = directory.read_record()
    record.metrics = {**record.metrics, "val_loss": float("inf"), "kl": float("nan")}
    directory.write_record(record)
    directory.append_metrics({"kind": "epoch", "step": 99, "epoch": 1, "val_loss": float("-inf")})
    text = (runs / "base" / "metrics.jsonl").read_text().splitlines()[-1]
    assert json.loads(text)["val_loss"] == "-inf"  # strict JSON on disk
    again = load_run(runs, "base")
    assert again.record.metrics["val_loss"] == float("inf") and again.record.metrics["kl"] != again.record.metrics["kl"]
    assert again.metrics[-1]["val_loss"] == float("-inf")


# -- bad arguments ----------------------------------------------------------------------------------------


BAD_ARGUMENTS = [
    (["train", "--seed", "-1"], "--seed must be a whole number from 0 to 9223372036854775807, not '-1'"),
    (["train", "--seed", str(2**64)], "--seed must be a whole number from 0 to 9223372036854775807, not '18446744073709551616'"),
    (["train", "--layers", "1000000"], "--layers must be a whole number from 1 to 8, not '1000000'"),
    (["train", "--embedding-dim", "1000000000"], "--embedding-dim must be a whole number from 1 to 4096, not '1000000000'"),
    (["train", "--hidden-size", "1e6"], "--hidden-size must be a whole number from 1 to 8192, not '1e6'"),
    (["train", "--device", "mps"], "--device must be auto, cpu, cuda or cuda:N, not 'mps'"),
    (["train", "--checkpoints", ""], "--checkpoints is empty"),
    (["train", "--checkpoints", "{file}"], "is not a folder"),
    (["train", "--checkpoints", "/dev/null"], "is not a folder"),
    (["train", "--checkpoints", "/proc/nope"], "cannot be made"),
    (["train", "--resume", ""], "'' is not a run name"),
    (["train", "--name", ""], "--name '' is not a plain folder name"),
    (["sweep", "--name", "", "--regularizer", "kl", "--weights", "1,2"], "--name '' is not a plain folder name"),
    (["train", "--corpus", ""], "--corpus must be file or folder paths, not ''"),
    (["generate", "../other/run", "--text", "the"], "'../other/run' is not a run name"),
    (["generate", "base", "--text", "the", "--device", "nonsense"], "Device 'nonsense' is not a device lm-explorer trains on"),
    (["generate", "base", "--text", "the", "--device", "meta"], "Device 'meta' is not a device"),
    (["generate", "base", "--text", "the", "--device", "mps"], "Device 'mps' is not a device"),
    (["generate", "base", "--text", "the", "--device", ""], "Device '' is not a device"),
    (["generate", "base", "--text", "the", "--top-k", "5", "--temperature", "1e-300"], "--temperature 1e-300 is not allowed"),
    (["generate", "base", "--text", "the", "--seed", "-5"], "--seed -5 is not allowed"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_one_sentence_and_exit_2(args, fragment, runs, small_corpus, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    args = [arg.format(file=a_file) for arg in args]
    if args[0] in ("train", "sweep") and "--checkpoints" not in args:
        args += ["--checkpoints", str(tmp_path / "fresh")]
    if args[0] in ("train", "sweep") and "--resume" not in args:
        args = [args[0], "--corpus", str(small_corpus), *TINY, *args[1:]]  # the case's own values come last and win
    if "--checkpoints" not in args:
        args += ["--checkpoints", str(runs)]
    before = sorted(path.name for path in tmp_path.iterdir())
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1
    one_sentence(err, fragment)
    assert sorted(path.name for path in tmp_path.iterdir()) == before


def test_repeated_corpus_flags_add_up(small_corpus, tiny_corpus, capsys):
    code, out, _ = run_cli(capsys, "corpus-info", "--corpus", small_corpus, "--corpus", tiny_corpus, "--json")
    assert code == 0
    assert json.loads(out)["sources"] == [str(small_corpus), str(tiny_corpus)]


# -- hostile corpora -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/urandom", "/proc/self/status", "long line"])
def test_a_corpus_that_is_not_a_bounded_text_file_is_refused_at_once(kind, tmp_path, capsys):
    if kind == "fifo":
        path = tmp_path / "corpus.txt"
        os.mkfifo(path)
        fragment = "is a FIFO (named pipe)"
    elif kind == "long line":
        path = tmp_path / "corpus.txt"
        path.write_text("a few words\n" + "word " * 500_000 + "\n")
        fragment = "line 2 is longer than 1,048,576 bytes"
    elif kind.startswith("/proc"):
        path, fragment = Path(kind), "is 0 bytes on disk"
    else:
        path, fragment = Path(kind), "is a character device"
    done = subprocess.run([SCRIPT, "corpus-info", "--corpus", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    one_sentence(done.stderr, fragment)


# -- the disk refuses ------------------------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """Mount a tmpfs on demand; skip where mounting is not permitted."""
    mounted = []

    def mount(size: str, options: str = "") -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(point)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); the disk-full test needs root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_disk_full_at_the_first_save_leaves_no_folder(small_tmpfs, small_corpus, capsys):
    checkpoints = small_tmpfs("64k")
    code, out, err = run_cli(
        capsys, "train", "--corpus", small_corpus, *TINY, "--epochs", "1", "--checkpoints", checkpoints, "--name", "full"
    )
    assert code == 2 and out == ""
    one_sentence(err, "Run 'full' could not be saved", "the disk is full", "nothing was saved")
    assert "previous checkpoint" not in err
    assert list(checkpoints.iterdir()) == []


def test_disk_full_at_a_later_save_keeps_the_previous_checkpoint(small_tmpfs, saved_runs, capsys):
    size = sum(path.stat().st_size for path in (saved_runs / "base").iterdir())
    checkpoints = small_tmpfs(f"{(size + 48 * 1024) // 4096 * 4096}")
    shutil.copytree(saved_runs / "base", checkpoints / "base")
    before = load_run(checkpoints, "base")
    code, out, err = run_cli(capsys, "train", "--resume", "base", "--epochs", "3", "--checkpoints", checkpoints)
    assert code == 2 and out == ""
    one_sentence(err, "Run 'base' could not be saved", "the disk is full", "the previous checkpoint is kept")
    after = load_run(checkpoints, "base")
    assert after.record.weights_file == before.record.weights_file and after.record.epochs_completed == 1
    assert not [path.name for path in (checkpoints / "base").iterdir() if path.name.endswith(".tmp")]


def test_a_read_only_checkpoints_folder(small_tmpfs, small_corpus, capsys):
    checkpoints = small_tmpfs("1m", ",ro")
    code, _, err = run_cli(capsys, "train", "--corpus", small_corpus, *TINY, "--checkpoints", checkpoints, "--name", "ro")
    assert code == 2
    one_sentence(err, "is not writable")


def test_a_folder_made_read_only_mid_training_ends_in_one_sentence_and_nothing_else(small_tmpfs, small_corpus, tmp_path):
    """The run's folder becomes a read-only bind mount of itself while the trainer holds files in it open."""
    checkpoints = small_tmpfs("16m")
    folder = checkpoints / "ro-later"
    process = start_training(checkpoints, "ro-later", small_corpus)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        wait_until_training(process)
        for command in (["mount", "--bind", folder, folder], ["mount", "-o", "remount,bind,ro", folder]):
            done = subprocess.run(command, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        _out, err = process.communicate(timeout=120)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
        subprocess.run(["umount", folder], capture_output=True)
    assert process.returncode == 2, err
    assert "Exception ignored" not in err and "PermissionError" not in err and "OSError" not in err, err
    one_sentence(err, "Run 'ro-later'", "the file system is read-only")


def test_the_documented_largest_seed_trains(small_corpus, tmp_path, capsys):
    """``epoch_seed`` of the largest seed used to overflow what ``torch.manual_seed`` takes, leaving the run failed."""
    largest = str(2**63 - 1)
    args = ["--corpus", small_corpus, *TINY, "--epochs", "1", "--checkpoints", tmp_path, "--json"]
    code, out, err = run_cli(capsys, "train", *args, "--seed", largest, "--name", "big-seed")
    assert code == 0, err
    assert json.loads(out)["status"] == "finished" and load_run(tmp_path, "big-seed").record.config.train.seed == 2**63 - 1


# -- signals and kills -------------------------------------------------------------------------------------------


def start_training(checkpoints: Path, name: str, corpus: Path, *extra: str, epochs: int = 200) -> subprocess.Popen:
    return subprocess.Popen(
        [
            SCRIPT,
            "train",
            "--corpus",
            corpus,
            *TINY,
            "--epochs",
            str(epochs),
            "--log-every",
            "1",
            "--checkpoints",
            checkpoints,
            "--name",
            name,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_until_training(process: subprocess.Popen) -> None:
    line = process.stderr.readline()  # printed once the run has started and its handlers are in place
    assert "training pairs" in line, line


@pytest.mark.parametrize(("signals", "code"), [((signal.SIGHUP,), 129), ((signal.SIGTERM, signal.SIGTERM, signal.SIGTERM), 130)])
def test_a_signal_stops_with_a_checkpoint_and_more_signals_cannot_cut_the_save(signals, code, small_corpus, tmp_path):
    process = start_training(tmp_path, "signalled", small_corpus)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        wait_until_training(process)
        for signum in signals:
            process.send_signal(signum)
        _out, err = process.communicate(timeout=120)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, err
    assert "Traceback" not in err
    record = load_run(tmp_path, "signalled").record
    assert record.status == "stopped"


def kill_during_saves(checkpoints: Path, corpus: Path, kills: int) -> None:
    """SIGKILL a training run at moments spread over its saves; after each, the run must load and resume."""
    import random

    chance = random.Random(7)
    epochs = "100000"  # more than any number of kills can reach, however fast the machine
    process = start_training(checkpoints, "killed", corpus, epochs=int(epochs))
    wait_until_training(process)
    process.kill()
    process.wait()
    for _ in range(kills):
        process = subprocess.Popen(
            [SCRIPT, "train", "--resume", "killed", "--epochs", epochs, "--checkpoints", checkpoints],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until_training(process)
        threading.Event().wait(chance.uniform(0.0, 0.6))
        process.kill()
        process.wait()
        run = load_run(checkpoints, "killed")
        assert run.record.weights_file is not None
    leftovers = [path.name for path in (checkpoints / "killed").iterdir() if path.name.endswith(".tmp")]
    done = subprocess.run(
        [SCRIPT, "train", "--resume", "killed", "--epochs", str(run.record.epochs_completed + 1), "--checkpoints", checkpoints],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not [path.name for path in (checkpoints / "killed").iterdir() if path.name.endswith(".tmp")], leftovers


def test_kills_during_saves_never_leave_an_unloadable_run(small_corpus, tmp_path):
    kill_during_saves(tmp_path, small_corpus, kills=4)


@pytest.mark.slow
def test_many_kills_during_saves(small_corpus, tmp_path):
    kill_during_saves(tmp_path, small_corpus, kills=45)


def test_a_first_save_that_fails_at_run_json_leaves_no_tensor_files(small_corpus, tmp_path, monkeypatch, capsys):
    """The weights were written, the record was not: nothing names them, so they go, and so does the run's folder."""
    import engine.runs.checkpoint as checkpoint

    real_write = checkpoint.atomic_write

    def full_at_the_record(path: Path, data: bytes, durable: bool = True) -> None:
        if path.name == "run.json":
            raise OSError(28, "No space left on device")
        real_write(path, data, durable)

    monkeypatch.setattr(checkpoint, "atomic_write", full_at_the_record)
    code, out, err = run_cli(capsys, "train", "--corpus", small_corpus, *TINY, "--checkpoints", tmp_path, "--name", "half")
    assert code == 2 and out == ""
    one_sentence(err, "Run 'half' could not be saved", "the disk is full")
    assert not (tmp_path / "half").exists()
