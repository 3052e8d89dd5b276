"""The reproduction's plan: the study's grid as configurations, what became of each, and their timings.

``lm-explorer reproduce`` (:mod:`engine.cli.reproduce`) trains the plan.

One call trains every run of a study's grid (:data:`engine.study.grid.STUDIES`: the study's ``GRID`` with the
``paper`` preset, or with ``--arch transformer`` the ``SOFTMAX_GRID`` with the ``transformer`` preset) for each seed
into ``OUT/runs`` (one folder per run and seed, ``<key>-s<seed>``), then writes into ``OUT``:
``figures/fig1.png … fig7.png`` (when matplotlib is installed), ``tables.md`` (greedy and the
study's top-5 sampler on its six seed texts), ``report.md`` (every number, the study's beside
ours, the findings) and ``timings.json`` (training seconds per run). The figures are also
printed to stdout as text plots. A run already in ``OUT/runs`` with the same configuration and
corpus is reused (finished) or resumed (stopped), so a second call only redraws.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config.models import RunConfig
from engine.config.presets import build_run_config
from engine.errors import UserError
from engine.study.grid import STUDIES, GridRun, Study

if TYPE_CHECKING:  # imported where used, as the functions below do
    pass

DEFAULT_OUT = "reproduction"
RUNS_FOLDER = "runs"
FIGURES_FOLDER = "figures"
TIMINGS_FILE = "timings.json"
STUDY_FILE = "ArticlesApril2018.csv"


def select_grid(text: str | None, study: Study = STUDIES["lstm"]) -> list[GridRun]:
    if text is None:
        return list(study.grid)
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in study.keys]
    if unknown or not keys:
        what = f"has no grid entry named {', '.join(map(repr, unknown))}" if unknown else "is empty"
        raise UserError(f"--runs {text!r} {what}; choose among: {', '.join(study.keys)}.")
    return [run for run in study.grid if run.key in keys]


def plan(
    grid: list[GridRun],
    seeds: list[int],
    corpus_paths: list[str],
    column: str | None,
    device: str,
    epochs: int | None,
    preset: str = "paper",
) -> list[tuple[GridRun, int, RunConfig]]:
    """One configuration of ``preset`` per grid entry and seed, named ``<key>-s<seed>``."""
    base: dict[str, Any] = {"corpus.paths": corpus_paths, "corpus.column": column, "train.device": device}
    if epochs is not None:
        base["train.epochs"] = epochs
    return [
        (run, seed, build_run_config(f"{run.key}-s{seed}", preset, {**base, "train.seed": seed, **run.overrides}))
        for run in grid
        for seed in seeds
    ]


@dataclass(frozen=True)
class GridResult:
    """What became of one configuration: trained, resumed or reused, and how long it trained now."""

    name: str
    action: str  # "trained", "resumed" or "reused"
    status: str  # the run's status afterwards: finished, diverged, stopped, failed
    seconds: float | None
    exit_code: int = 0


def comparable(config: RunConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude={"train": {"device"}, "corpus": {"paths"}})


def update_timings(out: Path, results: list[GridResult]) -> dict[str, float]:
    """Training seconds per run, kept across calls (a reused run keeps the time it took when trained)."""
    from engine.safe_io import atomic_write

    path = out / TIMINGS_FILE
    try:
        timings = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        timings = {}  # unreadable: this call's times start it again
    for result in results:
        if result.seconds is not None:
            timings[result.name] = timings.get(result.name, 0.0) * (result.action == "resumed") + result.seconds
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(timings, indent=1).encode())
    return timings
