"""The headless commands: train, sweep, generate, runs, corpus-info.

Mistakes in the input, and faults of the disk (full, read-only, no permission), end with one
sentence on stderr and exit code 2. A run that diverges exits 3. One stopped with Ctrl-C or
SIGTERM exits 130, with SIGHUP (the terminal went away) 129, after saving its checkpoint; signals
that arrive while it stops are ignored until the checkpoint is saved. An internal failure exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.config import (
    PRESETS,
    RunConfig,
    build_run_config,
    describe_validation_error,
    parse_weights,
)
from engine.errors import UserError
from engine.safe_io import describe_os_error
from engine.settings import add_options, given_overrides, settings

DEFAULT_CHECKPOINTS = "checkpoints"
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_STOPPED = 130
EXIT_HANGUP = 129
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one sentence and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        message = re.sub(r"^argument (\S+): \1 ", r"\1 ", message)  # a setting's own sentence names its flag already
        raise UserError(f"{self.prog}: {message.rstrip('.')}; see '{self.prog} --help'.")


def _number(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a {'whole number' if kind is int else 'number'}, not {text!r}") from None
    return convert


def _training_options(parser: argparse.ArgumentParser, weight: bool = True) -> None:
    """The options train and sweep share: one per setting (:mod:`engine.settings`), then the run's own."""
    add_options(parser, [item.key for item in settings() if weight or item.key != "objective.weight"])
    parser.add_argument("--preset", choices=sorted(PRESETS), help="paper: the study's exact model, batching, split and Keras defaults")
    parser.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR", help="where runs are saved (default ./checkpoints)")
    parser.add_argument("--name", metavar="RUN", help="run name (default: objective, weight and time)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="lm-explorer", description="Train word-level LSTM language models under entropy-based objectives, and compare them.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    train = commands.add_parser("train", help="train one run", description="Train one run and save it under --checkpoints.")
    _training_options(train)
    train.add_argument("--resume", metavar="RUN", help="continue a saved run (with --epochs: train it further)")

    sweep = commands.add_parser("sweep", help="one run per regularizer weight, then a comparison", description="Train one run per weight and compare them.")
    _training_options(sweep, weight=False)
    sweep.add_argument("--weights", required=True, metavar="W,W,…", help="comma-separated weights, e.g. 1e-7,1,10,100")

    generate = commands.add_parser("generate", help="continue seed texts with saved runs", description="Continue seed texts with one or more saved runs.")
    generate.add_argument("runs", nargs="+", metavar="RUN")
    generate.add_argument("--text", action="append", required=True, metavar="SEED", help="a seed text (repeat for several)")
    generate.add_argument("--words", type=_number(int, "--words"), default=10, metavar="N", help="words to add (default 10)")
    generate.add_argument("--top-k", type=_number(int, "--top-k"), metavar="K", help="sample among the K best instead of greedy (5: the study's sampler)")
    generate.add_argument("--temperature", type=_number(float, "--temperature"), default=1.0, metavar="T")
    generate.add_argument("--seed", type=_number(int, "--seed"), default=0, metavar="S", help="sampling seed")
    generate.add_argument("--details", action="store_true", help="also print each step's entropy and top-3 alternatives")
    generate.add_argument("--device", default="cpu", metavar="D")
    generate.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    generate.add_argument("--json", action="store_true")

    runs = commands.add_parser("runs", help="list saved runs", description="List the runs saved under --checkpoints.")
    runs.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    runs.add_argument("--json", action="store_true")

    info = commands.add_parser("corpus-info", help="the study's corpus counts", description="Documents, vocabulary (+1 padding), pairs and longest document.")
    add_options(info, ["corpus.paths", "corpus.column", "corpus.max_vocab", "corpus.min_count"])
    info.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_STOPPED


def default_run_name(config: RunConfig) -> str:
    from engine.report import objective_label

    label = objective_label(config.objective).replace(" + ", "-").replace("(", "").replace(")", "")
    weight = f"-w{config.objective.weight:g}" if config.objective.regularizer != "none" else ""
    return f"{label}{weight}-{datetime.now():%Y%m%d-%H%M%S}"


def unique_name(checkpoints: Path, name: str) -> str:
    candidate, n = name, 1
    while (checkpoints / candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _config_for(args: argparse.Namespace, name: str | None, extra: dict[str, Any] | None = None) -> RunConfig:
    overrides = {**given_overrides(args), **(extra or {})}
    config = build_run_config(name or "unnamed", args.preset, overrides)
    if name is None:
        config = build_run_config(unique_name(Path(args.checkpoints), default_run_name(config)), args.preset, overrides)
    return config


def checkpoints_folder(text: str, create: bool) -> Path:
    """The ``--checkpoints`` folder, made when ``create``; one sentence when it cannot be used."""
    if not text.strip():
        raise UserError("--checkpoints is empty; give the folder where runs are saved, such as ./checkpoints.")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"--checkpoints {text!r} is not a folder; give a folder where runs are saved, such as ./checkpoints.")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"--checkpoints {text!r} cannot be made ({describe_os_error(error)}); give a folder you can write to.") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"--checkpoints {text!r} is not writable; give a folder you can write to.")
    return path


def cmd_train(args: argparse.Namespace) -> int:
    from engine.trainer import Trainer

    checkpoints = checkpoints_folder(args.checkpoints, create=False)
    if args.resume is not None:
        given = given_overrides(args)
        fixed = sorted(item.flag for item in settings() if item.key in given and not item.resumable)
        fixed += ["--preset"] * bool(args.preset) + ["--name"] * bool(args.name)
        if fixed:
            *others, last = [item.flag for item in settings() if item.resumable]
            allowed = f"{', '.join(others)} and {last}"
            raise UserError(f"{', '.join(fixed)} cannot change when resuming: a resumed run keeps its configuration; only {allowed} apply.")
        trainer = Trainer.resume(checkpoints, args.resume, epochs=args.epochs, device=args.device, corpus_paths=args.corpus)
    else:
        trainer = Trainer.new(_config_for(args, args.name), checkpoints)
    checkpoints_folder(args.checkpoints, create=True)
    outcome = _watch(trainer, quiet=args.json)
    if args.json:
        print(json.dumps(outcome.as_json()))
    else:
        print(outcome.table())
    return outcome.exit_code


def cmd_sweep(args: argparse.Namespace) -> int:
    from engine.corpus import load_corpus
    from engine.report import objective_label, text_table
    from engine.trainer import Trainer

    weights = parse_weights(args.weights)
    checkpoints = checkpoints_folder(args.checkpoints, create=False)
    configs = [_config_for(args, f"{args.name}-w{weight:g}" if args.name else None, {"objective.weight": weight}) for weight in weights]
    checkpoints_folder(args.checkpoints, create=True)
    corpus = load_corpus(configs[0].corpus)
    outcomes = []
    for config in configs:
        outcomes.append(_watch(Trainer.new(config, checkpoints, corpus), quiet=args.json))
        if outcomes[-1].exit_code == EXIT_STOPPED:
            break
    if args.json:
        print(json.dumps({"runs": [outcome.as_json() for outcome in outcomes]}))
    else:
        headers = ["run", "objective", "weight", "status", *SUMMARY_COLUMNS]
        rows = [[o.name, objective_label(o.config.objective), f"{o.config.objective.weight:g}", o.status, *o.summary_cells()] for o in outcomes]
        print(text_table(headers, rows))
    return max(outcome.exit_code for outcome in outcomes)


SUMMARY_COLUMNS = ["epochs", "train_loss", "val_loss", "entropy", "kl", "accuracy", "distinct"]


class Outcome:
    """What one watched run did: its events' gist, for a table or JSON."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.name = config.name
        self.status = "training"
        self.epochs: list[dict[str, Any]] = []
        self.message: str | None = None
        self.definitions: dict[str, str] = {}
        self.exit_code = 0

    def as_json(self) -> dict[str, Any]:
        return {"run": self.name, "status": self.status, "message": self.message, "config": self.config.model_dump(mode="json"),
                "definitions": self.definitions, "epochs": self.epochs}

    def summary_cells(self) -> list[str]:
        from engine.report import distinct_label, number

        last = self.epochs[-1] if self.epochs else {}
        return [str(last.get("epoch", 0)), number(last.get("train_loss")), number(last.get("val_loss")), number(last.get("entropy")),
                number(last.get("kl")), number(last.get("accuracy")), distinct_label(last.get("distinct_predictions"))]

    def table(self) -> str:
        from engine.report import distinct_label, number, text_table

        headers = ["epoch", "train_loss", "val_loss", "entropy", "kl", "accuracy", "perplexity", "distinct"]
        rows = [[str(e["epoch"]), number(e["train_loss"]), number(e["val_loss"]), number(e["entropy"]), number(e["kl"]),
                 number(e["accuracy"]), number(e["perplexity"]), distinct_label(e["distinct_predictions"])] for e in self.epochs]
        lines = [f"run {self.name}: {self.status}" + (f" — {self.message}" if self.message else "")]
        if self.definitions:
            lines.append(f"entropy and kl on validation, definition: {self.definitions['entropy']}")
        if rows:
            lines.append(text_table(headers, rows))
        return "\n".join(lines)


def _watch(trainer, quiet: bool) -> Outcome:
    """Consume a trainer's events: progress on stderr, Ctrl-C/SIGTERM stop it with a checkpoint."""
    from engine.events import EpochMetrics, RunDiverged, RunFailed, RunFinished, RunStarted, RunStopped, StepMetrics

    outcome = Outcome(trainer.config)
    progress = Progress(enabled=not quiet)
    with _stop_on_signals(trainer.stop) as signals:
        for event in trainer.events():
            if isinstance(event, RunStarted):
                outcome.definitions = event.definitions
                progress.start(event)
            elif isinstance(event, StepMetrics):
                progress.update(event.step, event.total_steps, event.metrics.get("train_loss"))
            elif isinstance(event, EpochMetrics):
                outcome.epochs.append({"epoch": event.epoch, "step": event.step, **event.metrics, "collapsed": event.collapsed})
                progress.epoch(event)
            elif isinstance(event, RunFinished):
                outcome.status = "finished"
            elif isinstance(event, RunStopped):
                outcome.status, outcome.exit_code = "stopped", EXIT_HANGUP if signals.received == signal.SIGHUP else EXIT_STOPPED
                outcome.message = f"stopped at epoch {event.epoch:.2f}; resume with --resume {event.run_name}"
            elif isinstance(event, RunDiverged):
                outcome.status, outcome.message, outcome.exit_code = "diverged", event.message, EXIT_DIVERGED
            elif isinstance(event, RunFailed):
                if event.user_error:
                    raise UserError(event.message)
                outcome.status, outcome.message, outcome.exit_code = "failed", event.message, 1
                print(event.details, file=sys.stderr)
    progress.finish(outcome)
    return outcome


class Progress:
    """A one-line progress bar on stderr (a line per epoch when stderr is not a terminal)."""

    WIDTH = 30

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self.name = ""

    def start(self, event) -> None:
        self.name = event.run_name
        self.started = time.monotonic()
        if self.enabled:
            print(f"{event.run_name}: {event.train_pairs} training pairs, {event.val_pairs} validation, vocabulary {event.vocab_size}, "
                  f"{event.steps_per_epoch} batches/epoch on {event.device}", file=sys.stderr)

    def update(self, step: int, total: int, loss: float | None) -> None:
        if not self.live:
            return
        filled = int(self.WIDTH * step / max(total, 1))
        rate = step / max(time.monotonic() - self.started, 1e-9)
        print(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {step}/{total} batches  loss {loss:.4g}  {rate:.0f} batches/s ",
              end="", file=sys.stderr, flush=True)

    def epoch(self, event) -> None:
        from engine.report import distinct_label, number

        if not self.enabled:
            return
        m = event.metrics
        print(f"\r{self.name} epoch {event.epoch}: train_loss {number(m['train_loss'])}  val_loss {number(m['val_loss'])}  "
              f"entropy {number(m['entropy'])}  kl {number(m['kl'])}  accuracy {number(m['accuracy'])}  "
              f"distinct {distinct_label(m['distinct_predictions'])}" + " " * 10, file=sys.stderr)
        if event.collapsed:
            print(f"warning: {self.name} predicts only {int(m['distinct_predictions'])} distinct words on validation: it has collapsed.",
                  file=sys.stderr)

    def finish(self, outcome: Outcome) -> None:
        if self.enabled:
            print(f"{outcome.name}: {outcome.status} in {time.monotonic() - self.started:.1f} s", file=sys.stderr)


class _stop_on_signals:
    """While active, the first of SIGINT, SIGTERM or SIGHUP calls ``stop``; later ones are ignored.

    The run then ends after its current batch and saves its checkpoint; nothing can interrupt the
    save. ``received`` is the first signal's number (the exit code tells SIGHUP from the others).
    """

    def __init__(self, stop: Callable[[], None]):
        self.stop = stop
        self.previous: dict[int, Any] = {}
        self.received: int | None = None

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            return
        self.received = signum
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            print("\nstopping after this batch; the checkpoint will be saved", file=sys.stderr)
        self.stop()

    def __enter__(self):
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.checkpoint import load_run
    from engine.generate import Strategy, generate
    from engine.report import markdown_table
    from engine.trainer import resolve_device

    strategy = Strategy(top_k=args.top_k, temperature=args.temperature, seed=args.seed)
    device = resolve_device(args.device)
    checkpoints = checkpoints_folder(args.checkpoints, create=False)
    runs = [load_run(checkpoints, name, device) for name in args.runs]
    table = {(seed, run.name): generate(run, seed, args.words, strategy) for seed in args.text for run in runs}
    if args.json:
        print(json.dumps({"strategy": strategy.name, "words": args.words, "continuations": [
            {"seed": seed, "run": name, "text": c.text, "unknown_words": c.unknown_words, "entropy_definition": c.entropy_definition,
             "steps": [{"word": s.word, "probability": s.probability, "entropy": s.entropy,
                        "alternatives": [{"word": a.word, "probability": a.probability} for a in s.alternatives]} for s in c.steps]}
            for (seed, name), c in table.items()]}))
        return 0
    print(f"{strategy.name}, {args.words} words")
    rows = [[seed, *(_cell(table[(seed, run.name)]) for run in runs)] for seed in args.text]
    print(markdown_table(["seed", *(run.name for run in runs)], rows))
    if args.details:
        for (seed, name), continuation in table.items():
            print(f"\n{name} — {seed!r} (entropy: {continuation.entropy_definition})")
            for step in continuation.steps:
                alternatives = ", ".join(f"{a.word} {a.probability:.3f}" for a in step.alternatives)
                print(f"  {step.word:<16} p={step.probability:.3f}  entropy {step.entropy:.4g}  top: {alternatives}")
    return 0


def _cell(continuation) -> str:
    unknown = f"[unknown: {', '.join(continuation.unknown_words)}] " if continuation.unknown_words else ""
    return unknown + continuation.text


def cmd_runs(args: argparse.Namespace) -> int:
    from engine.checkpoint import list_runs
    from engine.report import distinct_label, number, objective_label, text_table

    listings = list_runs(checkpoints_folder(args.checkpoints, create=False))
    if args.json:
        print(json.dumps([{"run": item.name, "problem": item.problem,
                           "record": item.record.model_dump(mode="json", exclude={"vocab"}) if item.record else None} for item in listings]))
        return 0
    if not listings:
        print(f"no runs in {args.checkpoints}")
        return 0
    rows = []
    for item in listings:
        record = item.record
        if record is None:
            rows.append([item.name, "–", "–", "unreadable", "–", "–", "–", "–", item.problem or ""])
            continue
        m = record.metrics
        rows.append([record.name, objective_label(record.config.objective), f"{record.config.objective.weight:g}", record.status,
                     f"{record.epoch_progress:.3g}/{record.config.train.epochs}", number(m.get("val_loss")), number(m.get("accuracy")),
                     distinct_label(m.get("distinct_predictions")), record.updated])
    print(text_table(["run", "objective", "weight", "status", "epochs", "val_loss", "accuracy", "distinct", "updated"], rows))
    return 0


def cmd_corpus_info(args: argparse.Namespace) -> int:
    from engine.config import CorpusConfig
    from engine.corpus import load_corpus

    try:
        config = CorpusConfig(paths=args.corpus or [], column=args.column, max_vocab=args.max_vocab, min_count=args.min_count or 1)
    except ValidationError as error:
        raise UserError(describe_validation_error(error)) from None
    corpus = load_corpus(config)
    stats = corpus.stats
    if args.json:
        print(json.dumps({"sources": corpus.sources, "documents": stats.documents, "vocab_size": stats.vocab_size,
                          "pairs": stats.pairs, "longest": stats.longest, "fingerprint": corpus.fingerprint}))
        return 0
    print("\n".join([
        f"corpus:        {'; '.join(corpus.sources)}",
        f"documents:     {stats.documents}",
        f"vocabulary:    {stats.vocab_size} (distinct words + 1 for padding, as Keras counts)",
        f"pairs:         {stats.pairs}",
        f"longest:       {stats.longest} words",
    ]))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train,
    "sweep": cmd_sweep,
    "generate": cmd_generate,
    "runs": cmd_runs,
    "corpus-info": cmd_corpus_info,
}

