"""``lm-explorer reproduce``: the study's grid trained (or reused), its figures redrawn, its findings measured.

One call trains every run of a study's grid (:data:`engine.study.grid.STUDIES`, chosen by ``--arch``) for each seed
into ``OUT/runs`` (one folder per run and seed, ``<key>-s<seed>``), then writes into ``OUT``:
``figures/fig1.png … fig7.png`` (when matplotlib is installed), ``tables.md`` (greedy and the
study's top-5 sampler on its six seed texts), ``report.md`` (every number, the study's beside
ours, the findings) and ``timings.json`` (training seconds per run). The figures are also
printed to stdout as text plots. A run already in ``OUT/runs`` with the same configuration and
corpus is reused (finished) or resumed (stopped), so a second call only redraws.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli.common import ArgumentParser
from engine.cli.watch import watch
from engine.config.models import RunConfig
from engine.errors import UserError
from engine.exit_codes import EXIT_STOPPED
from engine.study.grid import GRID, STUDIES
from engine.study.reproduce import (
    DEFAULT_OUT,
    RUNS_FOLDER,
    STUDY_FILE,
    GridResult,
    comparable,
    plan,
    select_grid,
    update_timings,
)

if TYPE_CHECKING:
    from engine.lm.corpus import Corpus


def add_parsers(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """The ``reproduce`` subcommand's options."""
    from engine.config.settings import add_options

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
    parser.add_argument(
        "--arch",
        choices=tuple(STUDIES),
        default="lstm",
        help="lstm: the study's grid on the paper preset (default); transformer: "
        + STUDIES["transformer"].summary
        + ", on the transformer preset",
    )
    parser.add_argument(
        "--runs",
        metavar="KEY,…",
        help="only these grid entries (default all): "
        + "; ".join(f"--arch {arch}: {', '.join(study.keys)}" for arch, study in STUDIES.items()),
    )


def parse_seeds(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        seeds = [int(part) for part in parts]
    except ValueError:
        raise UserError(f"--seeds {text!r} is not a list of whole numbers; give seeds such as 0 or 1,2,3.") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r} needs at least one seed and no repeats; give seeds such as 0 or 1,2,3.")
    return seeds


def train_grid(configs: list[RunConfig], out: Path, corpus: Corpus | None = None, quiet: bool = False) -> list[GridResult]:
    """Train ``configs`` into ``out/runs``, one after another, on one loaded corpus.

    A folder that already holds a run of the same configuration (device and corpus paths aside)
    and the same corpus is reused when finished or diverged, and resumed otherwise; one holding
    another configuration is refused. Stops after a run stopped by Ctrl-C or SIGTERM. This is the
    one place that trains: pointing it at a controller trains the grid concurrently.
    """
    from engine.lm.corpus import load_corpus
    from engine.runs.checkpoint import RunDirectory
    from engine.training.trainer import Trainer

    runs = out / RUNS_FOLDER
    corpus = corpus or load_corpus(configs[0].corpus)
    results = []
    for config in configs:
        directory = RunDirectory(runs, config.name)
        if directory.path.exists():
            record = directory.read_record()
            if comparable(record.config) != comparable(config) or record.corpus_fingerprint != corpus.fingerprint:
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
        outcome = watch(trainer, quiet=quiet)
        results.append(GridResult(config.name, action, outcome.status, time.monotonic() - started, outcome.exit_code))
        if outcome.exit_code == EXIT_STOPPED:
            break
    return results


def cmd_reproduce(args: argparse.Namespace) -> int:
    from engine.lm.corpus import load_corpus

    started = time.monotonic()
    seeds = parse_seeds(args.seeds)
    study = STUDIES[args.arch]
    grid = select_grid(args.runs, study)
    device = args.device or "auto"
    planned = plan(grid, seeds, args.corpus or [], args.column, device, args.epochs, study.preset)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {args.out!r} is a file, not a folder; give a folder for the runs, figures and report.")
    corpus = load_corpus(planned[0][2].corpus)
    if not args.corpus and study.preset == "paper":
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
    timings = update_timings(out, results)
    if any(result.exit_code == EXIT_STOPPED for result in results):
        print("reproduce: stopped; run the same command again to resume the grid", file=sys.stderr)
        return EXIT_STOPPED
    from engine.study.report import collect, write_outputs

    reproduction = collect(planned, out, corpus, seeds, results, timings, device)
    reproduction.wall_seconds = time.monotonic() - started
    for line in write_outputs(reproduction, out):
        print(line)
    return max((result.exit_code for result in results), default=0)
