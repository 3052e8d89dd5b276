"""`lm-explorer reproduce` on a small real corpus: a 3-run grid for 2 epochs, trained once per module.

The grid is the control, KL weight 10 and Bansal's softmax + cross-entropy model. The tests check
what the command wrote (figures with one line per run, terminal plots, tables, the report), that
every number of the report is the runs' own, that a second call reuses the runs and needs no
matplotlib, and the identity behind the report's first finding.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.cli.main import main
from engine.metric_table import number
from engine.objective.metrics import Outputs, study_kl
from engine.runs.checkpoint import RunDirectory
from engine.study.findings import kl_decomposed
from engine.study.grid import FIGURES

GRID = ("control", "kl-10", "ce")
EPOCHS = 2
REPORT_METRICS = ("train_loss", "val_loss", "entropy", "kl", "accuracy", "perplexity", "distinct_predictions")


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, small_corpus):
    """Run the command once in-process, keeping stdout, stderr and every matplotlib figure it saved."""
    import engine.study.figures

    out = tmp_path_factory.mktemp("reproduce") / "out"
    saved: dict[str, object] = {}
    save_png = engine.study.figures.save_png

    def keep(figure, path, dpi=80):
        saved[Path(path).name] = figure
        save_png(figure, path, dpi)

    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        patch.setattr(engine.study.figures, "save_png", keep)
        code = main(
            [
                "reproduce",
                "--corpus",
                str(small_corpus),
                "--epochs",
                str(EPOCHS),
                "--runs",
                ",".join(GRID),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
    assert code == 0, stderr.getvalue()
    return {"out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "figures": saved}


def expected_lines(spec) -> int:
    return sum(key in GRID for key, _ in spec.lines)


def test_it_writes_the_figures_with_one_line_per_run(reproduced):
    out, figures = reproduced["out"], reproduced["figures"]
    drawn = {spec.number for spec in FIGURES if expected_lines(spec)}
    assert drawn == {1, 3, 4, 5, 6, 7}  # figure 2 is the entropy sweep, absent from this grid
    assert sorted(figures) == sorted(f"fig{n}.png" for n in drawn)
    for spec in FIGURES:
        path = out / "figures" / f"fig{spec.number}.png"
        if spec.number not in drawn:
            assert not path.exists()
            continue
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
        axes = figures[path.name].get_axes()
        assert [ax.get_title() for ax in axes] == [panel.title for panel in spec.panels]
        for ax in axes:
            assert len(ax.get_lines()) == expected_lines(spec)
            assert [list(line.get_xdata()) for line in ax.get_lines()] == [list(range(1, EPOCHS + 1))] * expected_lines(spec)
            assert ax.get_xlabel() == "Epoch"


def test_the_figures_draw_the_runs_values(reproduced):
    out = reproduced["out"]
    spec = next(spec for spec in FIGURES if spec.number == 6)
    (line,) = reproduced["figures"]["fig6.png"].get_axes()[0].get_lines()
    epochs = [m for m in RunDirectory(out / "runs", "kl-10-s0").read_metrics() if m["kind"] == "epoch"]
    assert list(line.get_ydata()) == pytest.approx([m["val_loss"] for m in epochs])
    assert line.get_label() == dict(spec.lines)["kl-10"] == "Weight = 10.0"


def test_terminal_plots_go_to_stdout(reproduced):
    stdout = reproduced["stdout"]
    for spec in FIGURES:
        assert (f"Figure {spec.number}:" in stdout) == bool(expected_lines(spec))
    assert "Entropies over Epochs  [Entropies]" in stdout and "o Control Model" in stdout
    assert "Validation Loss by Epoch for Different Regularization Weights" in stdout and "o Weight = 10.0" in stdout
    assert "Epoch" in stdout and "wrote:" in stdout


def test_report_numbers_are_the_runs_metrics(reproduced):
    out = reproduced["out"]
    report = (out / "report.md").read_text(encoding="utf-8")
    for key in GRID:
        epochs = [m for m in RunDirectory(out / "runs", f"{key}-s0").read_metrics() if m["kind"] == "epoch"]
        assert [m["epoch"] for m in epochs] == list(range(1, EPOCHS + 1))
        for m in epochs:
            row = "| " + " | ".join([key, str(int(m["epoch"])), *(number(float(m[name])) for name in REPORT_METRICS)]) + " |"
            assert row in report, row
    finding = report[report.index("## Finding 4") : report.index("## Per-epoch")]
    for key in GRID:
        last = [m for m in RunDirectory(out / "runs", f"{key}-s0").read_metrics() if m["kind"] == "epoch"][-1]
        assert f"| {number(float(last['accuracy']))} | {number(float(last['perplexity']))} |" in finding


def test_report_holds_the_study_comparison_and_the_findings(reproduced):
    report = (reproduced["out"] / "report.md").read_text(encoding="utf-8")
    for heading in ("## The study's printed numbers beside ours", "## Finding 1", "## Finding 2", "## Finding 3", "## Finding 4"):
        assert heading in report
    assert "| kl-10 | val_loss | 9.865 (cell 26) |" in report  # the study's printed value, beside ours
    assert "**not** the study's" in report  # a small corpus is not ArticlesApril2018.csv
    assert "| ce | benchmark | ce (softmax head) |" in report
    tables = (reproduced["out"] / "tables.md").read_text(encoding="utf-8")
    assert "## Greedy (argmax)" in tables and "## The study's top-5 sampler" in tables
    assert tables.count("| kl-10 |") == 2 and "| run | United States | President Trump |" in tables


def test_the_findings_measure_the_kl_identity_on_a_real_batch(reproduced):
    report = (reproduced["out"] / "report.md").read_text(encoding="utf-8")
    line = next(line for line in report.splitlines() if line.startswith("Measured on the first validation batch"))
    assert "run `kl-10-s0`" in line
    error = float(line.rsplit(": ", 1)[1].rstrip("."))
    assert error < 1e-9


def run_cli(*args: str, block_matplotlib: bool = False) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + ("sys.modules['matplotlib'] = None\n" if block_matplotlib else "")
    code = prelude + "from engine.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)


def test_a_second_call_only_redraws_and_needs_no_matplotlib(reproduced, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reproduced["out"], out)
    shutil.rmtree(out / "figures")
    before = {key: (out / "runs" / f"{key}-s0" / "run.json").read_bytes() for key in GRID}
    timings = (out / "timings.json").read_text()
    done = run_cli(
        "reproduce",
        "--corpus",
        str(reproduced_corpus(reproduced)),
        "--epochs",
        str(EPOCHS),
        "--runs",
        ",".join(GRID),
        "--out",
        str(out),
        "--device",
        "cpu",
        block_matplotlib=True,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'lm-explorer[report]'" in done.stdout
    assert "Figure 6:" in done.stdout  # the terminal plots are still drawn
    assert list((out / "figures").glob("*.png")) == []
    assert {key: (out / "runs" / f"{key}-s0" / "run.json").read_bytes() for key in GRID} == before
    assert (out / "timings.json").read_text() == timings
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "0 run(s) trained or resumed, 3 reused" in report and "matplotlib is not installed" in report
    assert (out / "tables.md").is_file()


def reproduced_corpus(reproduced) -> Path:
    record = json.loads((reproduced["out"] / "runs" / "control-s0" / "run.json").read_text())
    return Path(record["config"]["corpus"]["paths"][0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "a,b"], "--seeds 'a,b' is not a list of whole numbers"),
        (["--seeds", "1,1"], "no repeats"),
        (["--runs", "kl-10,nope"], "has no grid entry named 'nope'; choose among: control,"),
        (["--epochs", "3"], "holds a run with another configuration or corpus"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_code_2(reproduced, tmp_path, args, message):
    out = tmp_path / "out"
    shutil.copytree(reproduced["out"], out)
    base = [
        "--corpus",
        str(reproduced_corpus(reproduced)),
        "--runs",
        ",".join(GRID),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--epochs",
        str(EPOCHS),
    ]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["reproduce", *base, *args])
    assert code == 2
    assert message in stderr.getvalue() and "Traceback" not in stderr.getvalue()


def test_the_study_kl_on_one_hot_targets_is_a_clipped_ce_plus_a_small_term():
    """``KL = −log clip(y_k) + (V−1)·ε·log ε − ε·Σ_{j≠k} log clip(y_j)`` on random raw outputs."""
    generator = torch.Generator().manual_seed(0)
    rows, vocab, eps = 64, 500, 1e-7
    raw = torch.randn(rows, vocab, generator=generator, dtype=torch.float64) * 0.8 + 0.1  # below ε, inside [ε, 1] and above 1
    raw[:8] = torch.rand(8, vocab, generator=generator, dtype=torch.float64)  # rows entirely inside (0, 1)
    target = torch.randint(0, vocab, (rows,), generator=generator)
    one_hot = F.one_hot(target, vocab).double()
    kl = study_kl(one_hot, raw)

    clipped = raw.clamp(eps, 1.0)
    at_target = clipped[torch.arange(rows), target]
    others = (clipped.log() * (1 - one_hot)).sum(-1)
    by_hand = -at_target.log() + (vocab - 1) * eps * math.log(eps) - eps * others
    assert torch.allclose(kl, by_hand, rtol=0, atol=1e-12)

    clipped_ce, rest = kl_decomposed(raw, target)
    assert torch.allclose(clipped_ce + rest, kl, rtol=0, atol=1e-12)
    assert torch.all(rest <= 0) and torch.all(rest >= (vocab - 1) * eps * math.log(eps))
    assert torch.allclose(Outputs(raw, "linear").kl_to_words(target), kl, rtol=0, atol=1e-12)


def test_several_seeds_draw_the_mean_with_a_min_max_band():
    from matplotlib.collections import PolyCollection

    from engine.study.figures import Series, build_figure

    spec = next(spec for spec in FIGURES if spec.number == 6)
    series = [
        Series("Weight = 10.0", [1, 2, 3], [[9.0, 7.0, 6.0], [11.0, 9.0, 8.0]]),
        Series("Weight = 100.0", [1, 2, 3], [[60.0, 58.0, 57.0]]),
    ]
    ax = build_figure(spec, [(spec.panels[0], series)]).get_axes()[0]
    assert [list(line.get_ydata()) for line in ax.get_lines()] == [[10.0, 8.0, 7.0], [60.0, 58.0, 57.0]]
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]  # only the line with two seeds has one
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (low, high) == (6.0, 11.0)


def test_with_one_seed_the_report_says_no_difference_is_distinguishable(reproduced):
    report = (reproduced["out"] / "report.md").read_text()
    section = report.split("## Which differences are distinguishable")[1].split("\n## ")[0]
    assert "| kl-10 − control | perplexity | 2 |" in section and "too few seeds" in section
    assert "distinguishable |" not in section.replace("not distinguishable |", "")


def test_the_report_states_distinguishable_differences_over_seeds():
    from scipy import stats

    from engine.config.presets import build_run_config
    from engine.runs.groups import GroupEpochs
    from engine.study.grid import grid_run
    from engine.study.report import Reproduction, RunResult, _differences_section

    def entry(key: str, perplexities: list[float]) -> RunResult:
        lines = [
            [{"kind": "epoch", "epoch": 1, "perplexity": p, "accuracy": 0.1, "entropy": 1.0, "kl": 2.0}] for p in perplexities
        ]
        names = [f"{key}-s{seed}" for seed in range(len(perplexities))]
        return RunResult(grid_run(key), build_run_config(names[0], "paper"), ["finished"] * 3, GroupEpochs(names, lines))

    control, kl = [100.0, 102.0, 101.0], [90.0, 91.0, 93.0]
    section = _differences_section(Reproduction(None, [0, 1, 2], "cpu", [entry("control", control), entry("kl-10", kl)], {}, {}))
    interval = stats.ttest_ind(kl, control, equal_var=False).confidence_interval()
    row = next(line for line in section.splitlines() if line.startswith("| kl-10 − control | perplexity |"))
    assert f"{number(interval.low)} to {number(interval.high)}" in row and row.endswith("| 3 + 3 | distinguishable |")
    assert "Here: 1 distinguishable, 3 not distinguishable." in section


def test_reproduce_arch_transformer_trains_the_softmax_grid_with_seed_groups(small_corpus, tmp_path):
    """The transformer preset's grid, two seeds; with a softmax head ``ce + w·kl`` is ``(1 + w)·ce`` up to ε terms, which
    Adam's scale-free step all but ignores: the KL run ends where cross-entropy alone does."""
    out = tmp_path / "out"
    args = ["--corpus", str(small_corpus), "--arch", "transformer", "--runs", "ce,ce-kl-1", "--seeds", "0,1", "--epochs", "1"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["reproduce", *args, "--out", str(out), "--device", "cpu"])
    assert code == 0, stderr.getvalue()
    assert "4 runs (2 grid entries × 2 seed(s))" in stderr.getvalue()
    records = {name: RunDirectory(out / "runs", name).read_record() for name in ("ce-s0", "ce-s1", "ce-kl-1-s0", "ce-kl-1-s1")}
    assert {(r.config.preset, r.config.model.arch, r.config.model.head, r.config.train.seed) for r in records.values()} == {
        ("transformer", "transformer", "softmax", seed) for seed in (0, 1)
    }
    for seed in (0, 1):
        alone, with_kl = records[f"ce-s{seed}"].metrics, records[f"ce-kl-1-s{seed}"].metrics
        assert with_kl["perplexity"] == pytest.approx(alone["perplexity"], rel=1e-2)
        assert with_kl["val_loss"] == pytest.approx(2 * alone["val_loss"], rel=1e-2)
    report = (out / "report.md").read_text()
    assert "preset `transformer` for every run" in report
    assert "| ce-kl-1 − ce | perplexity | 1 |" in report  # no control in this grid: the study's entries meet ce
    collapsed = sum(records[f"ce-kl-1-s{seed}"].metrics["distinct_predictions"] <= 5 for seed in (0, 1)) == 2
    assert ("## Finding 2: the KL-regularized models collapse" in report) == collapsed  # the heading says what was found
    assert ("## Finding 2: the KL-regularized models do not collapse here" in report) == (
        all(records[f"ce-kl-1-s{seed}"].metrics["distinct_predictions"] > 5 for seed in (0, 1))
    )
    perplexities = [records[f"ce-s{seed}"].metrics["perplexity"] for seed in (0, 1)]
    assert f"{number(sum(perplexities) / 2)} ({number(min(perplexities))}–{number(max(perplexities))})" in report
    with contextlib.redirect_stderr(stderr):
        assert main(["reproduce", *args[:4], "--runs", "kl-10", "--out", str(out)]) == 2
    assert "--runs 'kl-10' has no grid entry named 'kl-10'; choose among: ce, ce-entropy-0.1" in stderr.getvalue()
