"""The headless commands, called as ``engine.cli.main.main([...])`` and, a few times, as the installed script."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.config.models import CorpusConfig
from engine.generate import generate
from engine.lm.corpus import load_corpus
from engine.objective.terms import BASE_LOSSES, REGULARIZERS
from engine.runs.checkpoint import load_run
from tests.conftest import nyt_file, record_json

SCRIPT = Path(sys.executable).parent / "lm-explorer"
TINY = ["--embedding-dim", "8", "--hidden-size", "16", "--batch-size", "16", "--device", "cpu", "--epochs", "1"]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- train ----------------------------------------------------------------------------------------


def test_train_json_prints_exactly_one_json_object(small_corpus, tmp_path, capsys):
    code, out, _ = run_cli(
        capsys,
        "train",
        "--corpus",
        small_corpus,
        *TINY,
        "--epochs",
        "2",
        "--checkpoints",
        tmp_path,
        "--name",
        "cli-json",
        "--json",
    )
    assert code == 0
    assert out.count("\n") == 1 and out.endswith("}\n")
    result = json.loads(out)
    assert (result["run"], result["status"], result["message"]) == ("cli-json", "finished", None)
    assert result["config"] == record_json(tmp_path, "cli-json")["config"]
    assert result["config"]["train"]["epochs"] == 2 and result["config"]["model"]["hidden_size"] == 16
    assert result["definitions"] == {"entropy": "softmax", "kl": "softmax"}
    assert [epoch["epoch"] for epoch in result["epochs"]] == [1, 2]
    last = result["epochs"][-1]
    assert {"train_loss", "val_loss", "entropy", "kl", "accuracy", "perplexity", "distinct_predictions", "collapsed"} <= set(last)
    assert last["val_loss"] == record_json(tmp_path, "cli-json")["metrics"]["val_loss"]


def test_train_prints_progress_on_stderr_and_an_epoch_table_on_stdout(small_corpus, tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "train",
        "--corpus",
        small_corpus,
        *TINY,
        "--checkpoints",
        tmp_path,
        "--name",
        "cli-table",
        "--regularizer",
        "entropy",
        "--weight",
        "1e-7",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "run cli-table: finished"
    assert lines[1] == "entropy and kl on validation, definition: softmax"
    assert lines[2].split() == ["epoch", "train_loss", "val_loss", "entropy", "kl", "accuracy", "perplexity", "distinct"]
    assert set(lines[3].replace(" ", "")) == {"-"}
    assert len(lines) == 5 and lines[4].split()[0] == "1"
    metrics = record_json(tmp_path, "cli-table")["metrics"]
    assert lines[4].split()[2] == f"{metrics['val_loss']:.4g}"
    assert err.startswith("cli-table: ") and "training pairs" in err.splitlines()[0]
    assert "cli-table epoch 1: train_loss" in err and "cli-table: finished in" in err


def test_default_run_names_say_the_objective_and_weight(small_corpus, tmp_path, capsys):
    code, out, _ = run_cli(
        capsys,
        "train",
        "--corpus",
        small_corpus,
        *TINY,
        "--checkpoints",
        tmp_path,
        "--json",
        "--loss",
        "beta",
        "--loss-param",
        "2",
        "--regularizer",
        "kl",
        "--weight",
        "10",
    )
    assert code == 0
    name = json.loads(out)["run"]
    assert name.startswith("beta2-kl-w10-")
    assert (tmp_path / name / "run.json").is_file()


def test_paper_preset_trains_and_generates_ten_words(small_corpus, tmp_path, capsys):
    code, out, _ = run_cli(
        capsys,
        "train",
        "--preset",
        "paper",
        "--corpus",
        small_corpus,
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--regularizer",
        "kl",
        "--weight",
        "10",
        "--checkpoints",
        tmp_path,
        "--name",
        "paper",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    config = result["config"]
    assert config["preset"] == "paper" and config["train"]["epochs"] == 1
    assert (
        config["model"]["embedding_dim"],
        config["model"]["hidden_size"],
        config["model"]["head"],
        config["model"]["init"],
    ) == (10, 100, "linear", "keras")
    assert (config["objective"]["loss"], config["objective"]["regularizer"], config["objective"]["weight"]) == ("mse", "kl", 10.0)
    assert (config["train"]["batch_size"], config["train"]["lr"], config["train"]["adam_eps"]) == (32, 1e-3, 1e-7)
    assert (config["train"]["batching"], config["corpus"]["split"]) == ("prefix", "pair")
    assert result["definitions"] == {"entropy": "study", "kl": "study"}

    # Adam as Keras had it: betas 0.9/0.999, epsilon 1e-7, lr 1e-3 (read back from the saved optimizer state)
    data = (tmp_path / "paper" / record_json(tmp_path, "paper")["optimizer_file"]).read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    group = json.loads(header["__metadata__"]["param_groups"])[0]
    assert (group["betas"], group["eps"], group["lr"]) == ([0.9, 0.999], 1e-7, 1e-3)

    code, out, _ = run_cli(
        capsys, "generate", "paper", "--text", "New York", "--text", "the government said the police", "--checkpoints", tmp_path
    )
    assert code == 0
    rows = out.splitlines()[3:]
    assert len(rows) == 2
    for row in rows:
        cell = re.sub(r"^\[unknown: [a-z, ]+\] ", "", row.split("|")[2].strip())
        assert len(cell.split()) == 10


def test_resume_continues_a_run(runs, capsys):
    code, out, _ = run_cli(capsys, "train", "--resume", "base", "--epochs", "2", "--checkpoints", runs, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "finished" and [epoch["epoch"] for epoch in result["epochs"]] == [2]
    assert record_json(runs, "base")["epochs_completed"] == 2


def test_a_diverging_run_exits_3_naming_the_step(small_corpus, tmp_path, capsys):
    code, out, _ = run_cli(
        capsys,
        "train",
        "--corpus",
        small_corpus,
        *TINY,
        "--checkpoints",
        tmp_path,
        "--name",
        "boom",
        "--lr",
        "1e35",
        "--loss",
        "mse",
        "--head",
        "linear",
        "--json",
    )
    assert code == 3
    result = json.loads(out)
    assert result["status"] == "diverged" and "non-finite at step 2" in result["message"]
    assert load_run(tmp_path, "boom").record.status == "diverged"


# -- sweep ----------------------------------------------------------------------------------------


def test_sweep_makes_one_run_per_weight(small_corpus, tmp_path, capsys):
    code, out, _ = run_cli(
        capsys,
        "sweep",
        "--weights",
        "0,1e-7,10",
        "--regularizer",
        "kl",
        "--corpus",
        small_corpus,
        *TINY,
        "--checkpoints",
        tmp_path,
        "--name",
        "sw",
    )
    assert code == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sw-w0", "sw-w10", "sw-w1e-07"]
    assert [record_json(tmp_path, name)["config"]["objective"]["weight"] for name in ("sw-w0", "sw-w1e-07", "sw-w10")] == [
        0.0,
        1e-7,
        10.0,
    ]
    lines = out.splitlines()
    assert lines[0].split() == [
        "run",
        "objective",
        "weight",
        "status",
        "epochs",
        "train_loss",
        "val_loss",
        "entropy",
        "kl",
        "accuracy",
        "distinct",
    ]
    rows = [line.split() for line in lines[2:]]
    assert [(row[0], " ".join(row[1:4]), row[4], row[5], row[6]) for row in rows] == [
        ("sw-w0", "ce + kl", "0", "finished", "1"),
        ("sw-w1e-07", "ce + kl", "1e-07", "finished", "1"),
        ("sw-w10", "ce + kl", "10", "finished", "1"),
    ]
    # the same corpus and seed: weight 0 and weight 1e-7 barely differ, weight 10 trains another model
    losses = [record_json(tmp_path, name)["metrics"]["val_loss"] for name in ("sw-w0", "sw-w1e-07", "sw-w10")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4) and losses[2] != pytest.approx(losses[0], rel=1e-4)


# -- generate -------------------------------------------------------------------------------------


def test_generate_prints_a_seeds_by_runs_table(saved_runs, capsys):
    code, out, _ = run_cli(
        capsys, "generate", "base", "linear", "--text", "the government", "--text", "zzqx the", "--checkpoints", saved_runs
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "greedy, 10 words"
    assert lines[1] == "| seed | base | linear |" and lines[2] == "|---|---|---|"
    assert len(lines) == 5
    for line, seed in zip(lines[3:], ["the government", "zzqx the"], strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == seed
        for cell, name in zip(cells[1:], ["base", "linear"], strict=True):
            expected = generate(load_run(saved_runs, name), seed)
            prefix = "[unknown: zzqx] " if seed == "zzqx the" else ""
            assert cell == prefix + expected.text
            assert len(expected.words) == 10


def test_generate_json_and_details(saved_runs, capsys):
    code, out, _ = run_cli(
        capsys,
        "generate",
        "base",
        "linear",
        "--text",
        "the police",
        "--words",
        "3",
        "--top-k",
        "5",
        "--seed",
        "2",
        "--checkpoints",
        saved_runs,
        "--json",
    )
    assert code == 0 and out.count("\n") == 1
    result = json.loads(out)
    assert result["strategy"] == "top-5 sampling (T=1, seed 2)" and result["words"] == 3
    assert [(c["seed"], c["run"]) for c in result["continuations"]] == [("the police", "base"), ("the police", "linear")]
    for continuation in result["continuations"]:
        assert len(continuation["steps"]) == 3 and len(continuation["text"].split()) == 3
        assert all(len(step["alternatives"]) == 3 for step in continuation["steps"])
    assert [c["entropy_definition"] for c in result["continuations"]] == ["softmax", "study"]

    code, out, _ = run_cli(
        capsys, "generate", "base", "--text", "the police", "--words", "2", "--details", "--checkpoints", saved_runs
    )
    assert code == 0
    assert "base — 'the police' (entropy: softmax)" in out
    details = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(details) == 2 and all("entropy" in line and "top:" in line for line in details)


# -- runs and corpus-info -------------------------------------------------------------------------------


def test_runs_lists_saved_runs_and_unreadable_ones(runs, capsys):
    (runs / "broken").mkdir()
    (runs / "broken" / "run.json").write_text("{ not json")
    code, out, _ = run_cli(capsys, "runs", "--checkpoints", runs)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "run",
        "objective",
        "weight",
        "status",
        "epochs",
        "val_loss",
        "accuracy",
        "distinct",
        "updated",
        "trainer",
    ]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"base", "linear", "broken"}
    base = record_json(runs, "base")
    assert rows["base"].split()[1:5] == ["ce", "0", "finished", "1/1"]
    assert f"{base['metrics']['val_loss']:.4g}" in rows["base"]
    assert rows["linear"].split()[1] == "mse"
    assert "unreadable" in rows["broken"] and "not valid JSON" in rows["broken"]

    code, out, _ = run_cli(capsys, "runs", "--checkpoints", runs, "--json")
    listed = {item["run"]: item for item in json.loads(out)}
    assert listed["broken"]["record"] is None and "not valid JSON" in listed["broken"]["problem"]
    assert listed["base"]["problem"] is None and listed["base"]["record"]["status"] == "finished"
    assert "vocab" not in listed["base"]["record"]


def test_runs_with_no_runs(tmp_path, capsys):
    assert run_cli(capsys, "runs", "--checkpoints", tmp_path / "none") == (0, f"no runs in {tmp_path / 'none'}\n", "")


def test_corpus_info_prints_the_study_counts(small_corpus, capsys):
    code, out, _ = run_cli(capsys, "corpus-info", "--corpus", small_corpus)
    assert code == 0
    assert out.splitlines() == [
        f"corpus:        {small_corpus}",
        "documents:     100",
        "vocabulary:    576 (distinct words + 1 for padding, as Keras counts)",
        "pairs:         1075",
        "longest:       12 words",
    ]
    code, out, _ = run_cli(capsys, "corpus-info", "--corpus", small_corpus, "--max-vocab", "100", "--json")
    info = json.loads(out)
    assert (info["documents"], info["vocab_size"], info["pairs"], info["longest"]) == (100, 100, 1075, 12)
    assert info["fingerprint"] == load_corpus(CorpusConfig(paths=[str(small_corpus)])).fingerprint


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["ArticlesApril2017.csv"], (831, 2422, 4806, 19)),
        (["ArticlesApril2018.csv"], (1214, 3494, 7803, 24)),
        ([], (8603, 11265, 51770, 24)),
    ],
    ids=["April2017", "April2018", "folder"],
)
def test_corpus_info_on_the_studys_data(names, expected, capsys):
    paths = [nyt_file(name) for name in names] or [nyt_file("ArticlesApril2017.csv").parent]
    _code, out, _ = run_cli(capsys, "corpus-info", "--corpus", *paths, "--json")
    info = json.loads(out)
    assert (info["documents"], info["vocab_size"], info["pairs"], info["longest"]) == expected


def test_corpus_info_on_the_embedded_corpus(capsys):
    code, out, _ = run_cli(capsys, "corpus-info")
    assert code == 0 and out.startswith("corpus:        Lee news corpus (lee_background.cor, shipped with gensim)")


# -- help -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [[], ["train"], ["sweep"], ["generate"], ["runs"], ["corpus-info"]], ids=lambda c: c[0] if c else "top"
)
def test_help_on_every_command_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lm-explorer {command[0] if command else ''}".rstrip())


def test_no_command_prints_help(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0 and out.startswith("usage: lm-explorer") and "corpus-info" in out


# -- bad input: exit 2, one sentence on stderr, nothing written ---------------------------------------------


def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "empty": tmp_path / "empty.txt",
        "short": tmp_path / "short.txt",
        "binary": tmp_path / "data.bin",
        "latin1": tmp_path / "latin1.txt",
        "csv": tmp_path / "table.csv",
        "other": tmp_path / "other.txt",
    }
    files["empty"].write_text("")
    files["short"].write_text("one\ntwo\n")
    files["binary"].write_bytes(bytes(range(256)))
    files["latin1"].write_bytes("Café au lait\n".encode("latin-1"))
    files["csv"].write_text("title,views\nA Headline Of Words,3\n")
    files["other"].write_text("some other corpus\nwith other words\n")
    return files


BAD_TRAIN = [
    (["--corpus", "{tmp}/missing.txt"], "does not exist; check the path given to --corpus"),
    (["--corpus", "{empty}"], "is 0 bytes on disk (empty"),
    (["--corpus", "{short}"], "has no document of 2 or more words"),
    (["--corpus", "{binary}"], "is binary, not text"),
    (["--corpus", "{latin1}"], "is not UTF-8 text"),
    (["--corpus", "{csv}", "--column", "headline"], "has no column 'headline'; its columns are: title, views."),
    (["--weight", "-1"], "lm-explorer train: --weight must be a finite number ≥ 0, not '-1'"),
    (["--weight", "nan"], "--weight must be a finite number ≥ 0, not 'nan'"),
    (["--weight", "inf"], "--weight must be a finite number ≥ 0, not 'inf'"),
    (["--weight", "abc"], "--weight must be a finite number ≥ 0, not 'abc'"),
    (["--epochs", "0"], "--epochs must be a whole number from 1 to 100000, not '0'"),
    (["--batch-size", "0"], "--batch-size must be a whole number from 1 to 65536, not '0'"),
    (["--epochs", "two"], "--epochs must be a whole number from 1 to 100000, not 'two'"),
    (["--loss", "hinge"], f"invalid choice: 'hinge' (choose from {', '.join(map(repr, BASE_LOSSES))})"),
    (["--regularizer", "l2"], f"invalid choice: 'l2' (choose from {', '.join(map(repr, REGULARIZERS))})"),
    (["--loss", "alpha"], "loss 'alpha' needs a parameter: give --loss-param"),
    (["--epsilon", "1"], "--epsilon must be a finite number ≥ 0 and < 1, not '1'"),
    (
        ["--regularizer", "kl", "--epsilon", "0.1"],
        "ε (--epsilon) is label smoothing's; with regularizer 'kl' drop it, or give --weight",
    ),
    (["--preset", "keras"], "invalid choice: 'keras'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_bad_train_input(args, message, small_corpus, tmp_path, capsys):
    files = {name: str(path) for name, path in bad_files(tmp_path).items()}
    args = [arg.format(tmp=tmp_path, **files) for arg in args]
    if "--corpus" not in args:
        args += ["--corpus", str(small_corpus)]
    checkpoints = tmp_path / "checkpoints"
    code, out, err = run_cli(capsys, "train", *args, "--device", "cpu", "--checkpoints", checkpoints, "--name", "bad")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert message in err
    assert not (checkpoints / "bad").exists()


def damage(runs: Path, how: str) -> None:
    record = runs / "base" / "run.json"
    weights = runs / "base" / json.loads(record.read_text())["weights_file"]
    if how == "corrupt run.json":
        record.write_text("<html>not json</html>")
    elif how == "truncated run.json":
        record.write_bytes(record.read_bytes()[:300])
    elif how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "format version":
        data = json.loads(record.read_text())
        data["format_version"] = 99
        record.write_text(json.dumps(data))


BAD_GENERATE = [
    (["missing-run", "--text", "the"], None, "No run named 'missing-run'"),
    (["base", "--text", "the"], "corrupt run.json", "Run 'base' is corrupt (run.json is not valid JSON"),
    (["base", "--text", "the"], "truncated run.json", "Run 'base' is corrupt"),
    (["base", "--text", "the"], "truncated weights", "Run 'base' has a truncated or corrupt weights file"),
    (["base", "--text", "the"], "format version", "saved in checkpoint format 99, but this lm-explorer reads format 1"),
    (["base", "--text", "zzqx qqqy"], None, "Seed text 'zzqx qqqy' has no word that run 'base' knows"),
    (["base", "--text", "the", "--words", "0"], None, "--words 0 is not allowed"),
    (["base", "--text", "the", "--top-k", "0"], None, "--top-k 0 is not allowed"),
    (["base"], None, "the following arguments are required: --text"),
]


@pytest.mark.parametrize(("args", "how", "message"), BAD_GENERATE, ids=[h or a[-1] for a, h, _ in BAD_GENERATE])
def test_bad_generate_input(args, how, message, runs, capsys):
    if how:
        damage(runs, how)
    code, out, err = run_cli(capsys, "generate", *args, "--checkpoints", runs)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert message in err


def test_resume_with_another_corpus_is_refused(runs, tmp_path, capsys):
    before = (runs / "base" / "run.json").read_bytes()
    other = bad_files(tmp_path)["other"]
    code, out, err = run_cli(capsys, "train", "--resume", "base", "--epochs", "2", "--corpus", other, "--checkpoints", runs)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Run 'base' was trained on another corpus (fingerprint" in err
    assert (runs / "base" / "run.json").read_bytes() == before


@pytest.mark.parametrize(("weights", "message"), [("1,-1", "Weight '-1' is not allowed"), (" , ", "The weight list is empty")])
def test_bad_sweep_weights(weights, message, small_corpus, tmp_path, capsys):
    code, out, err = run_cli(capsys, "sweep", "--weights", weights, "--corpus", small_corpus, "--checkpoints", tmp_path / "ck")
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
    assert not (tmp_path / "ck").exists()


def test_a_label_smoothing_sweep_varies_epsilon_through_weights(small_corpus, tmp_path, capsys):
    code, _out, err = run_cli(
        capsys,
        "sweep",
        "--corpus",
        small_corpus,
        *TINY,
        "--checkpoints",
        tmp_path,
        "--name",
        "ls",
        "--regularizer",
        "label-smoothing",
        "--weights",
        "0.05,0.1",
    )
    assert code == 0, err
    objectives = {name: record_json(tmp_path, name)["config"]["objective"] for name in ("ls-w0.05", "ls-w0.1")}
    assert [(o["epsilon"], o["weight"]) for o in objectives.values()] == [(0.05, 0.0), (0.1, 0.0)]


def test_a_sweep_without_a_regularizer_names_the_registrys(small_corpus, tmp_path, capsys):
    code, out, err = run_cli(capsys, "sweep", "--weights", "1,10", "--corpus", small_corpus, "--checkpoints", tmp_path / "ck")
    assert code == 2 and out == ""
    *others, last = [name for name in REGULARIZERS if name != "none"]
    assert (
        err
        == f"error: A sweep varies the regularizer's weight, and --regularizer is none; give --regularizer {', '.join(others)} or {last}.\n"
    )
    assert not (tmp_path / "ck").exists()


def test_a_bad_corpus_info_column(tmp_path, capsys):
    path = bad_files(tmp_path)["csv"]
    code, out, err = run_cli(capsys, "corpus-info", "--corpus", path, "--column", "body")
    assert code == 2 and out == ""
    assert err == f"error: CSV file {str(path)!r} has no column 'body'; its columns are: title, views.\n"


# -- the installed console script -----------------------------------------------------------------------


@pytest.fixture
def script() -> Path:
    if not SCRIPT.is_file():
        pytest.skip(f"the lm-explorer console script is not installed next to {sys.executable}")
    return SCRIPT


def test_console_script_corpus_info(script, small_corpus):
    done = subprocess.run(
        [script, "corpus-info", "--corpus", small_corpus, "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (info["documents"], info["vocab_size"], info["pairs"], info["longest"]) == (100, 576, 1075, 12)


def test_console_script_bad_input_is_one_line_and_exit_2(script, tmp_path):
    done = subprocess.run(
        [script, "train", "--corpus", tmp_path / "missing.txt", "--checkpoints", tmp_path / "ck"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"error: Corpus path '{tmp_path / 'missing.txt'}' does not exist; check the path given to --corpus.\n"


def test_console_script_ctrl_c_stops_with_a_checkpoint(script, tmp_path):
    checkpoints = tmp_path / "ck"
    process = subprocess.Popen(
        [script, "train", "--epochs", "50", "--device", "cpu", "--checkpoints", checkpoints, "--name", "interrupted"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        first_line = process.stderr.readline()  # printed once the run has started and the handlers are in place
        assert "interrupted:" in first_line and "training pairs" in first_line
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "stopping after this batch" in err and "Traceback" not in err
    assert out.startswith("run interrupted: stopped — stopped at epoch ")
    assert "resume with --resume interrupted" in out
    record = load_run(checkpoints, "interrupted").record
    assert record.status == "stopped" and record.epochs_completed == 0


def test_resume_refuses_options_that_would_change_the_run(runs, capsys):
    code, out, err = run_cli(capsys, "train", "--resume", "base", "--epochs", "2", "--lr", "0.1", "--checkpoints", runs)
    assert code == 2 and out == ""
    assert err.strip() == (
        "error: --lr cannot change when resuming: a resumed run keeps its configuration; "
        "only --corpus, --epochs and --device apply."
    )


def test_paper_preset_with_document_batching_needs_the_document_split(small_corpus, tmp_path, capsys):
    common = [
        "train",
        "--preset",
        "paper",
        "--corpus",
        str(small_corpus),
        "--epochs",
        "1",
        "--checkpoints",
        str(tmp_path),
        "--json",
    ]
    code, _, err = run_cli(capsys, *common, "--batching", "document", "--name", "refused")
    assert code == 2 and "the pair-level split needs prefix batching" in err
    code, out, _ = run_cli(capsys, *common, "--batching", "document", "--split", "document", "--name", "documents")
    assert code == 0
    assert json.loads(out)["config"]["corpus"]["split"] == "document"


def test_a_sweep_over_seeds_is_one_grid_with_a_confirmation_line(small_corpus, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "sweep", "--regularizer", "kl", "--weights", "10", "--seeds", "0-1", "--corpus", small_corpus, *TINY,
        "--checkpoints", tmp_path, "--name", "g",
    )  # fmt: skip
    assert code == 0, err
    assert err.splitlines()[0] == f"sweep: 2 runs (1 weight × 2 seeds) into {tmp_path}"
    assert [record_json(tmp_path, name)["config"]["train"]["seed"] for name in ("g-s0", "g-s1")] == [0, 1]
    assert "g-s0" in out and "g-s1" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--weights", "1,2,3", "--seeds", "0-99"], "The grid holds 300 runs (3 weights × 100 seeds), more than the 256"),
        (["--vary", "train.lr=1e-3", "--lr", "0.01"], "train.lr is both varied and given as --lr"),
        ([], "A sweep needs something to vary"),
        (["--vary", "train.lr=0"], "--lr must be a finite number > 0, not '0'"),
    ],
)
def test_bad_grids_are_one_sentence(options, message, small_corpus, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "sweep", "--regularizer", "kl", *options, "--corpus", small_corpus, "--checkpoints", tmp_path / "ck"
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "ck").exists()
