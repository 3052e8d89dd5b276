"""``lm-explorer reproduce``: the study's grid trained (or reused), its figures redrawn, its findings measured.

One call trains every run of a study's grid (:data:`engine.study.grid.STUDIES`, chosen by ``--arch``) for each seed
into ``OUT/runs`` (one folder per run and seed, ``<key>-s<seed>``), then writes into ``OUT``:
``figures/fig1.png … fig7.png`` (when matplotlib is installed), ``tables.md`` (greedy and the
study's top-5 sampler on its six seed texts), ``report.md`` (every number, the study's beside
ours, the findings) and ``timings.json`` (training seconds per run). The figures are also
printed to stdout as text plots. A run already in ``OUT/runs`` with the same configuration and
corpus is reused (finished) or resumed (stopped), so a second call only redraws. With ``--executor ray`` the
grid trains as a sweep on a Ray cluster's nodes (:func:`train_grid_on`), as many runs at once as it has CPUs or GPUs.
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
from engine.exit_codes import EXIT_STOPPED, exit_code
from engine.jobs.executors import add_executor_options, executor_for
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
    from engine.jobs.controller import Controller
    from engine.jobs.executor import Executor
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
    add_executor_options(parser)


def parse_seeds(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        seeds = [int(part) for part in parts]
    except ValueError:
        raise UserError(f"--seeds {text!r} is not a list of whole numbers; give seeds such as 0 or 1,2,3.") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r} needs at least one seed and no repeats; give seeds such as 0 or 1,2,3.")
    return seeds


def grid_action(runs: Path, config: RunConfig, corpus: Corpus) -> tuple[str, str | None]:
    """What a grid run's folder calls for, and the status it saved: ``trained`` (none yet), ``reused`` (finished or
    diverged) or ``resumed``; a folder holding another configuration (device and corpus paths aside) or corpus is refused."""
    from engine.runs.checkpoint import RunDirectory

    directory = RunDirectory(runs, config.name)
    if not directory.path.exists():
        return "trained", None
    record = directory.read_record()
    if comparable(record.config) != comparable(config) or record.corpus_fingerprint != corpus.fingerprint:
        raise UserError(
            f"{str(directory.path)!r} holds a run with another configuration or corpus; remove it, or give reproduce another --out."
        )
    return "reused" if record.status in ("finished", "diverged") else "resumed", record.status


def train_grid(configs: list[RunConfig], out: Path, corpus: Corpus | None = None, quiet: bool = False) -> list[GridResult]:
    """Train ``configs`` into ``out/runs``, one after another, on one loaded corpus.

    A folder that already holds a run of the same configuration and corpus is reused when finished
    or diverged, and resumed otherwise (:func:`grid_action`). Stops after a run stopped by Ctrl-C or
    SIGTERM. :func:`train_grid_on` trains the grid through an executor instead, as many at once as it places.
    """
    from engine.lm.corpus import load_corpus
    from engine.training.trainer import Trainer

    runs = out / RUNS_FOLDER
    corpus = corpus or load_corpus(configs[0].corpus)
    results = []
    for config in configs:
        action, saved = grid_action(runs, config, corpus)
        if action == "reused":
            results.append(GridResult(config.name, action, str(saved), None))
            continue
        trainer = (
            Trainer.resume(runs, config.name, epochs=config.train.epochs, device=config.train.device, corpus=corpus)
            if action == "resumed"
            else Trainer.new(config, runs, corpus)
        )
        started = time.monotonic()
        outcome = watch(trainer, quiet=quiet)
        results.append(GridResult(config.name, action, outcome.status, time.monotonic() - started, outcome.exit_code))
        if outcome.exit_code == EXIT_STOPPED:
            break
    return results


def train_grid_on(executor: Executor, configs: list[RunConfig], out: Path, corpus: Corpus, device: str) -> list[GridResult]:
    """Train ``configs`` into ``out/runs`` as a sweep through ``executor`` (``--executor ray``: on a cluster's nodes),
    reusing and resuming as :func:`train_grid` does; a run's seconds are its training wall time in this call."""
    from engine.cli.common import StopOnSignals
    from engine.jobs.controller import Controller

    runs = out / RUNS_FOLDER
    controller = Controller(runs, executor)
    actions = {config.name: grid_action(runs, config, corpus)[0] for config in configs}
    before = {name: _trained_seconds(controller, name) for name in actions}
    for config in configs:
        if actions[config.name] == "trained":
            controller.queue([config], rename=False)
        elif actions[config.name] == "resumed":
            controller.requeue(config.name)
    names = [name for name, action in actions.items() if action != "reused"]
    epochs = configs[0].train.epochs
    with StopOnSignals(lambda: None) as signals:
        statuses = (
            controller.run_queue(names, device=device, epochs=epochs, stopping=lambda: signals.received is not None)
            if names
            else {}
        )
    results = []
    for name, action in actions.items():
        status = str(statuses.get(name) or controller.runs.view(name).status)
        seconds = None if action == "reused" else _trained_seconds(controller, name) - before[name]
        results.append(GridResult(name, action, status, seconds, exit_code(status)))
    return results


def _trained_seconds(controller: Controller, name: str) -> float:
    """A run's training wall time so far (its last metrics line's ``wall_s``; 0 before its first)."""
    from engine.runs import protocol
    from engine.runs.checkpoint import RunDirectory

    if not (controller.checkpoints / name / protocol.RECORD_FILE).exists():
        return 0.0
    return max(
        (float(line.get("wall_s", 0.0)) for line in RunDirectory(controller.checkpoints, name).read_metrics()), default=0.0
    )


def cmd_reproduce(args: argparse.Namespace) -> int:
    from engine.lm.corpus import load_corpus

    started = time.monotonic()
    seeds = parse_seeds(args.seeds)
    executor = executor_for(args.executor, args.address)
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
    configs = [config for _, _, config in planned]
    if args.executor == "local":
        results = train_grid(configs, out, corpus)
    else:
        results = train_grid_on(executor, configs, out, corpus, device)
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
