"""The reproduction's outputs: figures (PNG and text), ``tables.md`` and ``report.md``.

:func:`collect` reads the grid's saved runs and measures the findings (:mod:`engine.study.findings`);
:func:`write_outputs` draws and writes everything. Every number in the report is read from the
runs' ``metrics.jsonl`` epoch lines (validation entropy, KL, accuracy, perplexity, distinct
predictions; epoch-mean training loss) or measured here on the saved models, and formatted by
:func:`engine.metric_table.number`; with several seeds a cell reads ``mean (min–max)``.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import engine
from engine.config.models import RunConfig
from engine.formatting import markdown_table
from engine.lm.corpus import Corpus
from engine.metric_table import EPOCH_SUMMARY, Metric, distinct_label, is_collapsed, metrics, number
from engine.runs.groups import GroupEpochs
from engine.runs.welch import mean_sd
from engine.study.grid import (
    FIGURES,
    NOTEBOOK,
    STUDY_CORPUS,
    STUDY_PRINTED,
    STUDY_SEED_TEXTS,
    STUDY_TOLERANCE,
    STUDY_TOP_K,
    FigureSpec,
    GridRun,
    agrees,
)

if TYPE_CHECKING:  # imported where used, as the functions below do (findings loads torch)
    from engine.study.figures import PanelData
    from engine.study.findings import Continuations, KLCheck, Predictions
    from engine.study.reproduce import GridResult

GENERATED_WORDS = 10
SUMMARY_METRICS = metrics("val_loss", "accuracy", "perplexity", "distinct_predictions")
"""The last epoch's validation metrics in the report's summary table."""


@dataclass
class RunResult:
    """One grid entry over its seeds, a seed group (:class:`engine.runs.groups.GroupEpochs`): run names, statuses and
    epoch records per seed."""

    grid: GridRun
    config: RunConfig
    statuses: list[str]
    group: GroupEpochs

    @property
    def names(self) -> list[str]:
        return self.group.names

    @property
    def common_epochs(self) -> list[int]:
        """The epochs every seed completed."""
        return self.group.common_epochs

    def values(self, metric: str) -> list[list[float]]:
        """``values[seed][epoch]`` over the common epochs."""
        return self.group.values(metric)

    def final(self, metric: str) -> list[float]:
        return [column[-1] for column in self.values(metric)] if self.common_epochs else []

    @property
    def head(self) -> str:
        return self.config.model.head


@dataclass
class Reproduction:
    """Everything the outputs are drawn from."""

    corpus: Corpus
    seeds: list[int]
    device: str
    runs: list[RunResult]
    actions: dict[str, str]  # run name → trained / resumed / reused
    timings: dict[str, float]  # run name → training seconds
    predictions: dict[str, Predictions] = field(default_factory=dict)  # grid key → the first seed's
    continuations: dict[str, Continuations] = field(default_factory=dict)  # grid key → the first seed's
    kl: KLCheck | None = None  # when a linear-head KL run is in the grid
    wall_seconds: float = 0.0

    @property
    def is_study_corpus(self) -> bool:
        stats = self.corpus.stats
        return {"documents": stats.documents, "vocab_size": stats.vocab_size, "pairs": stats.pairs} == STUDY_CORPUS

    def run(self, key: str) -> RunResult | None:
        return next((run for run in self.runs if run.grid.key == key), None)


def collect(
    planned: list[tuple[GridRun, int, RunConfig]],
    out: Path,
    corpus: Corpus,
    seeds: list[int],
    results: list[GridResult],
    timings: dict[str, float],
    device: str,
) -> Reproduction:
    """Read the grid's runs from ``out/runs`` and measure the findings on each entry's first seed."""
    from engine.runs.checkpoint import RunDirectory, load_run
    from engine.study.findings import continuations, kl_check, validation_predictions
    from engine.study.reproduce import RUNS_FOLDER

    runs_dir = out / RUNS_FOLDER
    by_key: dict[str, RunResult] = {}
    for grid, _, config in planned:
        directory = RunDirectory(runs_dir, config.name)
        record = directory.read_record()
        lines = [line for line in directory.read_metrics(record.epochs_completed) if line.get("kind") == "epoch"]
        entry = by_key.setdefault(grid.key, RunResult(grid, config, [], GroupEpochs([])))
        entry.group.names.append(config.name)
        entry.statuses.append(record.status)
        entry.group.lines.append(lines)
    reproduction = Reproduction(corpus, seeds, device, list(by_key.values()), {r.name: r.action for r in results}, timings)
    trained = [entry for entry in reproduction.runs if entry.common_epochs]
    for entry in trained:
        run = load_run(runs_dir, entry.names[0], "cpu")
        reproduction.predictions[entry.grid.key] = validation_predictions(run, corpus)
        reproduction.continuations[entry.grid.key] = continuations(run, STUDY_SEED_TEXTS, GENERATED_WORDS, STUDY_TOP_K)
    # the identity holds for any linear head's outputs; measure it on the study's pick when it is there
    linear = sorted(
        (entry for entry in trained if entry.head == "linear"),
        key=lambda entry: (entry.grid.key != "kl-10", entry.config.objective.regularizer != "kl"),
    )
    if linear:
        reproduction.kl = kl_check(load_run(runs_dir, linear[0].names[0], "cpu"), corpus)
    return reproduction


# -- writing --------------------------------------------------------------------------------------


def figure_panels(spec: FigureSpec, reproduction: Reproduction) -> list[PanelData]:
    """The panels of a figure with one :class:`engine.study.figures.Series` per run of it that the grid holds."""
    from engine.study.figures import Series

    panels = []
    for panel in spec.panels:
        series = []
        for key, label in spec.lines:
            run = reproduction.run(key)
            if run is not None and run.common_epochs:
                series.append(Series(label, run.common_epochs, run.values(panel.metric)))
        panels.append((panel, series))
    return panels


def write_outputs(reproduction: Reproduction, out: Path) -> list[str]:
    """Draw and write every output; return the lines to print (text plots, then what was written)."""
    from engine.safe_io import atomic_write
    from engine.study.figures import MATPLOTLIB_HINT, build_figure, have_matplotlib, save_png, text_figure

    printed, written = [], []
    with_png = have_matplotlib()
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for spec in FIGURES:
        panels = figure_panels(spec, reproduction)
        if not any(series for _, series in panels):
            continue
        printed.append(text_figure(spec, panels))
        if with_png:
            path = figures / f"fig{spec.number}.png"
            save_png(build_figure(spec, panels), path)
            written.append(str(path))
    atomic_write(out / "tables.md", render_tables(reproduction).encode())
    atomic_write(out / "report.md", render_report(reproduction, with_png).encode())
    written += [str(out / "tables.md"), str(out / "report.md")]
    lines = ["\n\n".join(printed), "", "wrote: " + ", ".join(written)]
    if not with_png:
        lines.append(f"note: {MATPLOTLIB_HINT}.")
    return lines


# -- tables.md ------------------------------------------------------------------------------------


def render_tables(reproduction: Reproduction) -> str:
    seed = reproduction.seeds[0]
    parts = [
        f"# Generation tables\n\nEach run's continuation of the study's six seed texts by {GENERATED_WORDS} words "
        f"(training seed {seed}). Greedy takes the argmax at every step; the study's sampler draws among the top "
        f"{STUDY_TOP_K} raw outputs, weighted by the outputs clipped at 0 (sampling seed 0).\n"
    ]
    for title, pick in (("Greedy (argmax)", "greedy"), (f"The study's top-{STUDY_TOP_K} sampler", "sampled")):
        rows = [[key, *(getattr(c, pick)[text] for text in STUDY_SEED_TEXTS)] for key, c in reproduction.continuations.items()]
        parts.append(f"## {title}\n\n" + markdown_table(["run", *STUDY_SEED_TEXTS], rows) + "\n")
    return "\n".join(parts)


# -- report.md ------------------------------------------------------------------------------------


def _seed_mean(values: list[float]) -> float:
    """The mean over seeds, as the comparisons compute it (:func:`engine.runs.welch.mean_sd`)."""
    return mean_sd(values)[0]


def cell(values: list[float]) -> str:
    """One value, or ``mean (min–max)`` over seeds."""
    if not values:
        return "–"
    if len(values) == 1:
        return number(values[0])
    return f"{number(_seed_mean(values))} ({number(min(values))}–{number(max(values))})"


def render_report(reproduction: Reproduction, with_png: bool) -> str:
    sections = [
        _header(reproduction),
        _grid_section(reproduction),
        _figures_section(reproduction, with_png),
        _study_section(reproduction),
        _summary_section(reproduction),
        _finding_kl(reproduction),
        _finding_collapse(reproduction),
        _finding_sampler(reproduction),
        _finding_standard(reproduction),
        _differences_section(reproduction),
        _epochs_section(reproduction),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _header(r: Reproduction) -> str:
    stats = r.corpus.stats
    trained = [name for name, action in r.actions.items() if action != "reused"]
    seconds = [r.timings[name] for entry in r.runs for name in entry.names if name in r.timings]
    lines = [
        '# Reproducing "An Analysis of Entropy-Based Techniques in Generative Language Models"',
        "",
        f"Written by `lm-explorer reproduce` (lm-explorer {engine.__version__}, torch {_torch_version()}, Python "
        f"{platform.python_version()}) on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- Corpus: {'; '.join(r.corpus.sources)} — {stats.documents} documents, vocabulary {stats.vocab_size} "
        f"(+1 padding counted), {stats.pairs} next-word pairs"
        + (
            "; the study's corpus."
            if r.is_study_corpus
            else "; **not** the study's (ArticlesApril2018.csv), so its printed numbers are a reference only."
        ),
        f"- Seeds: {', '.join(map(str, r.seeds))}; epochs: {r.runs[0].config.train.epochs}; device: {r.device}; "
        f"preset `{r.runs[0].config.preset}` for every run.",
        f"- This call: {len(trained)} run(s) trained or resumed, {len(r.actions) - len(trained)} reused; "
        f"{r.wall_seconds:.0f} s wall time in all. Training time of the grid's runs, as recorded when each trained, summed: "
        f"{sum(seconds):.0f} s over {len(seconds)} run(s).",
        "- Entropy and KL are validation means. For the study's linear head they are its clipped definitions on the raw "
        "outputs (`clip(y) = min(max(y, 1e-7), 1)`); for a softmax head, the standard ones on `p = softmax(z)`. "
        "Perplexity is `exp` of the softmax cross-entropy of the raw outputs, for every head.",
    ]
    return "\n".join(lines)


def _torch_version() -> str:
    import torch

    return torch.__version__


def _grid_section(r: Reproduction) -> str:
    in_figures: dict[str, list[str]] = {}
    for spec in FIGURES:
        for key, _ in spec.lines:
            in_figures.setdefault(key, []).append(str(spec.number))
    rows = [
        [
            e.grid.key,
            e.grid.group,
            e.grid.description,
            ", ".join(in_figures.get(e.grid.key, [])) or "–",
            ", ".join(sorted(set(e.statuses))),
        ]
        for e in r.runs
    ]
    return "## The grid\n\n" + markdown_table(["run", "group", "objective", "figures", "status"], rows)


def _figures_section(r: Reproduction, with_png: bool) -> str:
    lines = ["## Figures", ""]
    if not with_png:
        lines.append(
            "matplotlib is not installed, so only the text plots (printed by the command) were drawn; "
            "`pip install 'lm-explorer[report]'` and run the command again for the PNGs."
        )
        return "\n".join(lines)
    for spec in FIGURES:
        if any(r.run(key) for key, _ in spec.lines):
            mark = "" if spec.study else " (ours: the study has six figures)"
            lines.append(f"- [Figure {spec.number}](figures/fig{spec.number}.png): {spec.caption}{mark}")
    return "\n".join(lines)


def _study_section(r: Reproduction) -> str:
    rows, agreed, compared = [], 0, 0
    for key, printed in STUDY_PRINTED.items():
        entry = r.run(key)
        if entry is None or not entry.common_epochs:
            continue
        for metric, study_value in printed.values().items():
            ours = entry.final(metric)
            ok = agrees(study_value, ours)
            agreed, compared = agreed + ok, compared + 1
            ratio = (sum(ours) / len(ours)) / study_value
            rows.append(
                [key, metric, f"{number(study_value)} ({printed.source})", cell(ours), f"{ratio:.3g}", "yes" if ok else "**no**"]
            )
    if not rows:
        return ""
    epoch = r.runs[0].config.train.epochs
    intro = (
        f"## The study's printed numbers beside ours (epoch {epoch})\n\n"
        f"The study's values are the epoch-5 lines printed in {NOTEBOOK}. \"agrees\": the study's value lies "
        f"within our seed spread or within {STUDY_TOLERANCE:.0%} of our mean. {agreed} of {compared} agree."
    )
    if not r.is_study_corpus or epoch != 5:
        intro += " This call's corpus or epoch count differs from the study's, so the comparison is indicative only."
    return intro + "\n\n" + markdown_table(["run", "metric", "study", "ours", "ours / study", "agrees"], rows)


def _summary_section(r: Reproduction) -> str:
    rows = []
    for e in r.runs:
        if not e.common_epochs:
            continue
        prediction = r.predictions.get(e.grid.key)
        top = ", ".join(f"{word!r} {share:.0%}" for word, share in prediction.top(2)) if prediction else "–"
        rows.append(
            [
                e.grid.key,
                e.grid.description,
                *(_seeds_cell(metric, e.final(metric.key)) for metric in SUMMARY_METRICS),
                top,
            ]
        )
    return (
        "## Accuracy, perplexity and distinct predictions (last epoch, validation)\n\n"
        '"distinct": how many different words the argmax names over the validation set (COLLAPSED at 5 or fewer). '
        '"most predicted": the argmax words with their share of validation predictions (first seed).\n\n'
        + markdown_table(["run", "objective", *(metric.header for metric in SUMMARY_METRICS), "most predicted"], rows)
    )


def _seeds_cell(metric: Metric, values: list[float]) -> str:
    """``metric``'s values over the seeds, a collapse flagged where the metric flags one."""
    return _distinct_cell(values) if metric.collapse else cell(values)


def _distinct_cell(values: list[float]) -> str:
    if len(values) == 1:
        return distinct_label(values[0])
    return cell(values) + (" COLLAPSED" if values and all(is_collapsed(int(v)) for v in values) else "")


def _finding_kl(r: Reproduction) -> str:
    k = r.kl
    text = [
        "## Finding 1: the study's KL term is a clipped cross-entropy on raw outputs",
        "",
        "The study's `kl_divergence` clips both arguments to [ε, 1], ε = 1e-7. Against a one-hot target on the next word "
        "`k`, `clip(t_k) = 1` and `clip(t_j) = ε` for the other V−1 words, so",
        "",
        "```",
        "KL = Σ_j clip(t_j) · log(clip(t_j) / clip(y_j))",
        "   = −log clip(y_k) + Σ_{j≠k} ε · (log ε − log clip(y_j))",
        "   = −log clip(y_k) + (V−1)·ε·log ε − ε·Σ_{j≠k} log clip(y_j)",
        "```",
        "",
        "The first term is a cross-entropy taken on the clipped raw linear outputs instead of on probabilities: it is 0 as soon "
        "as `y_k ≥ 1`, whatever the other outputs are, and nothing makes the outputs a distribution. The rest lies between "
        "`(V−1)·ε·log ε` and 0 (as `ε ≤ clip(y_j) ≤ 1`) and has zero gradient wherever `y_j` is outside [ε, 1].",
    ]
    if k is not None:
        text += [
            "",
            f"Measured on the first validation batch of run `{k.run}` ({k.rows} predictions, V = {k.vocab}), in float64: "
            f"mean KL {number(k.kl)}, mean `−log clip(y_k)` {number(k.clipped_ce)}, mean rest {k.rest:.3g} "
            f"(from {k.rest_min:.3g} to {k.rest_max:.3g}; bound `(V−1)·ε·log ε` = {k.bound:.3g}); "
            f"largest |KL − (clipped CE + rest)| over the batch: {k.identity_error:.2g}.",
        ]
    return "\n".join(text)


def _finding_collapse(r: Reproduction) -> str:
    kl_runs = [e for e in r.runs if e.config.objective.regularizer == "kl" and e.common_epochs]
    if not kl_runs:
        return ""
    rows, collapsed = [], 0
    for e in kl_runs:
        distinct = e.final("distinct_predictions")
        collapsed += all(is_collapsed(int(v)) for v in distinct)
        prediction = r.predictions.get(e.grid.key)
        top = prediction.top(1)[0] if prediction and prediction.total else ("–", 0.0)
        rows.append([e.grid.key, _distinct_cell(distinct), cell(e.final("accuracy")), f"{top[0]!r}", f"{top[1]:.1%}"])
    chosen = r.run("kl-10")
    verdict = ""
    if chosen is not None and chosen.common_epochs:
        verdict = (
            " The study's pick, weight 10, is one of them."
            if all(is_collapsed(int(v)) for v in chosen.final("distinct_predictions"))
            else " The study's pick, weight 10, is not collapsed here."
        )
    heading, meaning = "the KL-regularized models collapse", COLLAPSE_MEANING
    if collapsed == 0:
        heading, meaning = "the KL-regularized models do not collapse here", ""
    elif collapsed < len(kl_runs):
        heading = "some of the KL-regularized models collapse"
    return (
        f"## Finding 2: {heading}\n\n"
        f"{collapsed} of {len(kl_runs)} KL-regularized runs predict 5 or fewer distinct words over the whole validation set "
        f"(every seed).{meaning}{verdict}\n\n"
        + markdown_table(["run", "distinct", "accuracy", "most predicted word", "its share"], rows)
    )


COLLAPSE_MEANING = (
    " Whatever the input, the argmax of a collapsed model names one of a handful of words, and a model that names a "
    "single word is right exactly as often as that word is the next word."
)


def _finding_sampler(r: Reproduction) -> str:
    rows = []
    for key, c in r.continuations.items():
        rows.append(
            [
                key,
                str(c.distinct(c.greedy)),
                str(c.distinct(c.sampled)),
                c.greedy[STUDY_SEED_TEXTS[0]],
                c.sampled[STUDY_SEED_TEXTS[0]],
            ]
        )
    if not rows:
        return ""
    return (
        "## Finding 3: the varied word lists come from the sampler\n\n"
        f"The study's tables for KL weights 10 and 100 were drawn with its top-{STUDY_TOP_K} sampler; its control table "
        "with greedy argmax. Below: how many different words each run's six continuations use under each decoder, and "
        f"both continuations of {STUDY_SEED_TEXTS[0]!r}. Full tables: [tables.md](tables.md).\n\n"
        + markdown_table(
            [
                "run",
                "distinct words, greedy",
                f"distinct words, top-{STUDY_TOP_K}",
                f"greedy: {STUDY_SEED_TEXTS[0]}",
                f"top-{STUDY_TOP_K}: {STUDY_SEED_TEXTS[0]}",
            ],
            rows,
        )
    )


def _finding_standard(r: Reproduction) -> str:
    keys = [e for e in r.runs if e.grid.group in ("benchmark", "standard") or e.grid.key in ("control", "kl-10")]
    rows = [
        [
            e.grid.key,
            e.grid.description,
            cell(e.final("accuracy")),
            cell(e.final("perplexity")),
            _distinct_cell(e.final("distinct_predictions")),
            cell(e.final("entropy")),
        ]
        for e in keys
        if e.common_epochs
    ]
    if not any(e.grid.group != "study" for e in keys):
        return ""
    trained = [e for e in r.runs if e.common_epochs]
    best = max(trained, key=lambda e: _seed_mean(e.final("accuracy")))
    sharpest = min(trained, key=lambda e: _seed_mean(e.final("perplexity")))
    healthy = [e.grid.key for e in trained if not all(is_collapsed(int(v)) for v in e.final("distinct_predictions"))]
    return (
        "## Finding 4: the standard objectives on the same data\n\n"
        "Bansal's softmax + cross-entropy model (the benchmark the study proposed but did not run), with and without the "
        "confidence penalty (Pereyra et al. 2017) and label smoothing (Szegedy et al. 2016), beside the study's control and "
        "its chosen KL weight. Same preset, data, split and seed; entropy is on softmax probabilities for the softmax-head "
        "runs and the study's clipped definition for the linear ones. "
        f"Over the whole grid, the highest accuracy is {number(_seed_mean(best.final('accuracy')))} (`{best.grid.key}`), the lowest "
        f"perplexity {number(_seed_mean(sharpest.final('perplexity')))} (`{sharpest.grid.key}`, vocabulary {r.corpus.stats.vocab_size}); "
        f"runs above the collapse threshold: {', '.join(f'`{key}`' for key in healthy) or 'none'}.\n\n"
        + markdown_table(["run", "objective", "accuracy", "perplexity", "distinct", "entropy"], rows)
    )


DIFFERENCE_METRICS = ("perplexity", "accuracy", "entropy", "kl")
"""What the differences section compares: metrics every objective shares (each run's own loss is not one)."""


def _differences_section(r: Reproduction) -> str:
    """Each entry against its baseline (the study's runs against ``control`` where the grid has one, else against
    ``ce``, like the standard ones) at their last common epoch: the difference of seed means with its 95 % Welch
    interval (:mod:`engine.runs.compare`)."""
    from engine.runs.compare import TABLE_HEADERS, compare_groups

    rows, verdicts = [], {"distinguishable": 0, "not distinguishable": 0, "too few seeds": 0}
    standard = r.run("ce")
    study = r.run("control") or standard
    for e in r.runs:
        baseline = study if e.grid.group == "study" else standard
        if baseline is None or baseline is e or not e.common_epochs or not baseline.common_epochs:
            continue
        comparison = compare_groups(e.grid.key, e.group, baseline.grid.key, baseline.group, True, DIFFERENCE_METRICS)
        for row in comparison.rows:
            cells = row.cells()
            verdicts[cells[-1]] += 1
            rows.append([f"{e.grid.key} − {baseline.grid.key}", *cells])
    if not rows:
        return ""
    counts = ", ".join(f"{count} {verdict}" for verdict, count in verdicts.items() if count)
    return (
        "## Which differences are distinguishable\n\n"
        "Each run against its baseline (the study's against `control` where the grid has one, else and for the standard "
        "objectives against `ce`) at their last "
        "common epoch: the difference of the seed means, its 95 % interval by Welch's t (with its degrees of freedom) and n "
        "per side. A difference is distinguishable when its interval excludes 0; with one seed a side nothing is, "
        f"whatever the two numbers say (`--seeds 0,1,2` gives three a side). Here: {counts}.\n\n"
        + markdown_table(["runs", *TABLE_HEADERS], rows)
    )


def _epochs_section(r: Reproduction) -> str:
    headers = ["run", "epoch", *(metric.key for metric in EPOCH_SUMMARY)]
    rows = []
    for e in r.runs:
        for index, epoch in enumerate(e.common_epochs):
            rows.append(
                [e.grid.key, str(epoch), *(cell([seed[index] for seed in e.values(metric.key)]) for metric in EPOCH_SUMMARY)]
            )
    return (
        "## Per-epoch numbers for every run\n\n"
        "Validation metrics at each epoch end; `train_loss` is the mean over the epoch's batches, as Keras printed it.\n\n"
        + markdown_table(headers, rows)
    )
