"""``lm-explorer reproduce``: the study's grid trained (or reused), its figures redrawn, its findings measured.

One call trains every run of :data:`engine.study.GRID` with the ``paper`` preset for each seed
into ``OUT/runs`` (one folder per run and seed, ``<key>-s<seed>``), then writes into ``OUT``:
``figures/fig1.png … fig7.png`` (when matplotlib is installed), ``tables.md`` (greedy and the
study's top-5 sampler on its six seed texts), ``report.md`` (every number, the study's beside
ours, the findings) and ``timings.json`` (training seconds per run). The figures are also
printed to stdout as text plots. A run already in ``OUT/runs`` with the same configuration and
corpus is reused (finished) or resumed (stopped), so a second call only redraws.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import RunConfig, build_run_config
from engine.errors import UserError
from engine.study import GRID, GRID_KEYS, GridRun

if TYPE_CHECKING:  # imported where used, as the functions below do
    from engine.cli import ArgumentParser
    from engine.corpus import Corpus

DEFAULT_OUT = "reproduction"
RUNS_FOLDER = "runs"
FIGURES_FOLDER = "figures"
TIMINGS_FILE = "timings.json"
STUDY_FILE = "ArticlesApril2018.csv"


def add_reproduce_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """The ``reproduce`` subcommand's options (called from :func:`engine.cli.build_parser`)."""
    from engine.settings import add_options

    parser = commands.add_parser(
        "reproduce",
        help="train the study's grid and redraw its figures, tables and findings",
        description=(
            f"Train the study's grid (control, entropy and KL sweeps, Bansal's softmax + cross-entropy model, confidence "
            f"penalty and label smoothing: {len(GRID)} runs per seed) with the paper preset, reusing runs already in "
            f"OUT/runs, and write its figures, generation tables and a report with the findings into OUT."
        ),
    )
    add_options(parser, ["corpus.paths", "corpus.column", "train.epochs", "train.device"])
    parser.add_argument(
        "--seeds", default="0", metavar="S,S,…", help="training seeds, comma-separated (default 0); several draw a spread band"
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR", help=f"where runs, figures and the report go (default ./{DEFAULT_OUT})"
    )
    parser.add_argument("--runs", metavar="KEY,…", help=f"only these grid entries (default all): {', '.join(GRID_KEYS)}")


def parse_seeds(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        seeds = [int(part) for part in parts]
    except ValueError:
        raise UserError(f"--seeds {text!r} is not a list of whole numbers; give seeds such as 0 or 1,2,3.") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r} needs at least one seed and no repeats; give seeds such as 0 or 1,2,3.")
    return seeds


def select_grid(text: str | None) -> list[GridRun]:
    if text is None:
        return list(GRID)
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in GRID_KEYS]
    if unknown or not keys:
        what = f"has no grid entry named {', '.join(map(repr, unknown))}" if unknown else "is empty"
        raise UserError(f"--runs {text!r} {what}; choose among: {', '.join(GRID_KEYS)}.")
    return [run for run in GRID if run.key in keys]


def plan(
    grid: list[GridRun], seeds: list[int], corpus_paths: list[str], column: str | None, device: str, epochs: int | None
) -> list[tuple[GridRun, int, RunConfig]]:
    """One ``paper``-preset configuration per grid entry and seed, named ``<key>-s<seed>``."""
    base: dict[str, Any] = {"corpus.paths": corpus_paths, "corpus.column": column, "train.device": device}
    if epochs is not None:
        base["train.epochs"] = epochs
    return [
        (run, seed, build_run_config(f"{run.key}-s{seed}", "paper", {**base, "train.seed": seed, **run.overrides}))
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


def train_grid(configs: list[RunConfig], out: Path, corpus: Corpus | None = None, quiet: bool = False) -> list[GridResult]:
    """Train ``configs`` into ``out/runs``, one after another, on one loaded corpus.

    A folder that already holds a run of the same configuration (device and corpus paths aside)
    and the same corpus is reused when finished or diverged, and resumed otherwise; one holding
    another configuration is refused. Stops after a run stopped by Ctrl-C or SIGTERM. This is the
    one place that trains: pointing it at a controller trains the grid concurrently.
    """
    from engine.checkpoint import RunDirectory
    from engine.cli import EXIT_STOPPED, _watch
    from engine.corpus import load_corpus
    from engine.trainer import Trainer

    runs = out / RUNS_FOLDER
    corpus = corpus or load_corpus(configs[0].corpus)
    results = []
    for config in configs:
        directory = RunDirectory(runs, config.name)
        if directory.path.exists():
            record = directory.read_record()
            if _comparable(record.config) != _comparable(config) or record.corpus_fingerprint != corpus.fingerprint:
                raise UserError(
                    f"{str(directory.path)!r} holds a run with another configuration or corpus; "
                    "remove it, or give reproduce another --out."
                )
            if record.status in ("finished", "diverged"):
                results.append(GridResult(config.name, "reused", record.status, None))
                continue
            trainer, action = (
                Trainer.resume(runs, config.name, epochs=config.train.epochs, device=config.train.device, corpus=corpus),
                "resumed",
            )
        else:
            trainer, action = Trainer.new(config, runs, corpus), "trained"
        started = time.monotonic()
        outcome = _watch(trainer, quiet=quiet)
        results.append(GridResult(config.name, action, outcome.status, time.monotonic() - started, outcome.exit_code))
        if outcome.exit_code == EXIT_STOPPED:
            break
    return results


def _comparable(config: RunConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude={"train": {"device"}, "corpus": {"paths"}})


def cmd_reproduce(args: argparse.Namespace) -> int:
    from engine.cli import EXIT_STOPPED
    from engine.corpus import load_corpus

    started = time.monotonic()
    seeds = parse_seeds(args.seeds)
    grid = select_grid(args.runs)
    device = args.device or "auto"
    planned = plan(grid, seeds, args.corpus or [], args.column, device, args.epochs)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {args.out!r} is a file, not a folder; give a folder for the runs, figures and report.")
    corpus = load_corpus(planned[0][2].corpus)
    if not args.corpus:
        print(
            f"note: no --corpus given, so this trains on the embedded Lee news corpus; the study trained on {STUDY_FILE} "
            f"(pass --corpus path/to/{STUDY_FILE} to compare with its printed numbers).",
            file=sys.stderr,
        )
    print(
        f"reproduce: {len(planned)} runs ({len(grid)} grid entries × {len(seeds)} seed(s)) into {out / RUNS_FOLDER}",
        file=sys.stderr,
    )
    results = train_grid([config for _, _, config in planned], out, corpus)
    timings = _update_timings(out, results)
    if any(result.exit_code == EXIT_STOPPED for result in results):
        print("reproduce: stopped; run the same command again to resume the grid", file=sys.stderr)
        return EXIT_STOPPED
    from engine.study_report import collect, write_outputs

    reproduction = collect(planned, out, corpus, seeds, results, timings, device)
    reproduction.wall_seconds = time.monotonic() - started
    for line in write_outputs(reproduction, out):
        print(line)
    return max((result.exit_code for result in results), default=0)


def _update_timings(out: Path, results: list[GridResult]) -> dict[str, float]:
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
