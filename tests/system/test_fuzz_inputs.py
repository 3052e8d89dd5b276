"""Property-based fuzzing of the front doors: corpus files, command lines, and run folders from elsewhere.

Whatever the bytes or arguments, the outcome is a result or one sentence (exit 2), never a
traceback, and nothing is written outside the checkpoints folder; a command that only reads a
run never rewrites its files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli.main import main
from engine.config.models import CorpusConfig
from engine.errors import UserError
from engine.lm.corpus import load_corpus
from engine.runs.protocol import MAX_METRICS_LINE_BYTES

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

TEXTY = st.lists(st.sampled_from([*list("ab cd,\"\n\r\t.;'é\x00\ufeff"), "headline", "Unknown", "word"]), max_size=120).map(
    "".join
)
CORPUS_BYTES = st.one_of(st.binary(max_size=400), TEXTY.map(lambda text: text.encode("utf-8")))


@FUZZ
@given(data=CORPUS_BYTES, suffix=st.sampled_from([".txt", ".csv", ".cor"]), column=st.sampled_from([None, "headline", "x"]))
def test_any_corpus_bytes_give_a_corpus_or_one_sentence(tmp_path, data, suffix, column):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        corpus = load_corpus(CorpusConfig(paths=[str(path)], column=column))
    except UserError as error:
        assert "\n" not in str(error) and str(error).endswith((".", ")")), str(error)
    else:
        assert corpus.stats.pairs >= 1 and corpus.vocab[0] == "<pad>"


VALUES = [
    "",
    "0",
    "-1",
    "1",
    "1e999",
    "nan",
    "inf",
    "1e-300",
    "99999999999999999999999",
    "../x",
    "/dev/null",
    "/proc/nope",
    "cuda",
    "meta",
    "abc",
    "é",
    "1,2",
    "10",
    "paper",
]
FLAGS = [
    "--epochs",
    "--batch-size",
    "--lr",
    "--seed",
    "--weight",
    "--weights",
    "--layers",
    "--hidden-size",
    "--embedding-dim",
    "--dropout",
    "--loss",
    "--loss-param",
    "--regularizer",
    "--preset",
    "--device",
    "--checkpoints",
    "--corpus",
    "--name",
    "--resume",
    "--column",
    "--max-vocab",
    "--min-count",
    "--val-fraction",
    "--split",
    "--batching",
    "--head",
    "--init",
    "--text",
    "--words",
    "--top-k",
    "--temperature",
    "--json",
    "--details",
]
COMMANDS = ["train", "sweep", "generate", "runs", "corpus-info", "nonsense"]
ARGUMENTS = st.lists(st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES)), max_size=8)


@FUZZ
@given(command=st.sampled_from(COMMANDS), arguments=ARGUMENTS)
def test_any_command_line_gives_a_result_or_one_sentence(tmp_path, command, arguments):
    """Train and sweep always get a corpus that does not exist, so no fuzzed line trains for minutes."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    checkpoints = work / "checkpoints"
    missing = str(work / "missing.txt")
    argv = [command, *arguments]
    if command in ("train", "sweep"):
        argv += ["--corpus", missing]
    argv += ["--checkpoints", str(checkpoints)] if "--checkpoints" not in arguments else []
    before = set(os.listdir(work))
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # --help
                code = exit_.code
    finally:
        os.chdir(cwd)
    assert code in (0, 2), (argv, code, err.getvalue())
    if code == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err.getvalue())
    assert "Traceback" not in err.getvalue()
    created = set(os.listdir(work)) - before - {"checkpoints"}
    assert not created, (argv, created)
    assert not Path(work / "missing.txt").exists()


# -- run folders: what a copied, synced or untarred folder may hold ----------------------------------------

DIGITS = st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n)  # JSON integer literals, up to past Python's limit
INTEGER_TEXT = st.one_of(DIGITS, DIGITS.map(lambda digits: "-" + digits), st.integers().map(str))
RECORD_INTEGERS = ["step", "batch_in_epoch", "epochs_completed", "prefix_width", "train_pairs", "steps_per_epoch"]
LINE_SIZES = st.sampled_from([MAX_METRICS_LINE_BYTES - 100, MAX_METRICS_LINE_BYTES, MAX_METRICS_LINE_BYTES + 1, 3 << 20])
METRICS_LINE = st.one_of(
    st.builds(
        lambda key, number: f'{{"kind": "step", "step": 1, "epoch": 0.5, "{key}": {number}}}',
        st.sampled_from(["step", "epoch", "train_loss", "wall_s", "pairs_per_s"]),
        INTEGER_TEXT,
    ),
    LINE_SIZES.map(lambda size: '{"kind": "step", "step": 1, "epoch": 0.5, "pad": "' + "x" * size + '"}'),
    LINE_SIZES.map(lambda size: "9" * size),
)
READ_ONLY_COMMANDS = [("runs",), ("runs", "--json"), ("generate", "base", "--text", "the"), ("train", "--resume", "base")]


def run_quietly(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from([None, *RECORD_INTEGERS]), number=INTEGER_TEXT, line=st.one_of(st.none(), METRICS_LINE))
def test_read_only_commands_on_a_hostile_run_folder_answer_and_rewrite_nothing(saved_runs, tmp_path, field, number, line):
    """Huge integers in run.json or metrics.jsonl, and over-long metrics lines: a result or one sentence, and
    ``runs``, ``generate`` and a refused ``train --resume`` (the run finished its epochs) leave both files byte-identical."""
    checkpoints = Path(tempfile.mkdtemp(dir=tmp_path))
    shutil.copytree(saved_runs / "base", checkpoints / "base")
    record, metrics = checkpoints / "base" / "run.json", checkpoints / "base" / "metrics.jsonl"
    if field is not None:
        data = json.loads(record.read_text())
        data[field] = "HOSTILE"
        record.write_text(json.dumps(data).replace('"HOSTILE"', number))
    if line is not None:
        with metrics.open("a") as file:
            file.write(line + "\n")
    before = (record.read_bytes(), metrics.read_bytes())
    for command in READ_ONLY_COMMANDS:
        code, err = run_quietly([*command, "--checkpoints", str(checkpoints)])
        assert code in (0, 2) and "Traceback" not in err, (command, code, err)
        if code == 2:
            assert [text for text in err.splitlines() if text.startswith("error: ")] == err.splitlines()[-1:], err
    assert code == 2  # the resume was refused
    assert (record.read_bytes(), metrics.read_bytes()) == before
