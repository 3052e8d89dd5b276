"""The headless commands: train, sweep, generate, runs, corpus-info.

Mistakes in the input end with one sentence on stderr and exit code 2. A run that diverges
exits 3, one stopped with Ctrl-C or SIGTERM exits 130 after saving its checkpoint, an internal
failure exits 1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.config import (
    LOSSES,
    PRESETS,
    REGULARIZERS,
    RunConfig,
    build_run_config,
    describe_validation_error,
    parse_weight,
    parse_weights,
)
from engine.errors import UserError

DEFAULT_CHECKPOINTS = "checkpoints"
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_STOPPED = 130

# CLI option → dotted config key, for the options that override a preset only when given.
CONFIG_OPTIONS = {
    "corpus": "corpus.paths",
    "column": "corpus.column",
    "max_vocab": "corpus.max_vocab",
    "min_count": "corpus.min_count",
    "val_fraction": "corpus.val_fraction",
    "split": "corpus.split",
    "embedding_dim": "model.embedding_dim",
    "hidden_size": "model.hidden_size",
    "layers": "model.num_layers",
    "dropout": "model.dropout",
    "head": "model.head",
    "init": "model.init",
    "loss": "objective.loss",
    "loss_param": "objective.loss_param",
    "regularizer": "objective.regularizer",
    "weight": "objective.weight",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "seed": "train.seed",
    "device": "train.device",
    "batching": "train.batching",
    "log_every": "train.log_every",
    "compile": "train.compile",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one sentence and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message.rstrip('.')}; see '{self.prog} --help'.")


def _number(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a {'whole number' if kind is int else 'number'}, not {text!r}") from None
    return convert


def _weight(text: str) -> float:
    try:
        return parse_weight(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _training_options(parser: argparse.ArgumentParser, weight: bool = True) -> None:
    """The options train and sweep share; each overrides the preset only when given."""
    data = parser.add_argument_group("corpus")
    data.add_argument("--corpus", nargs="+", metavar="PATH", help="a .txt, .csv or folder of them (default: the embedded Lee news corpus)")
    data.add_argument("--column", help="the CSV column holding the text (default: headline, else the only text column)")
    data.add_argument("--max-vocab", type=_number(int, "--max-vocab"), metavar="N", help="keep the N-2 most frequent words, the rest become <unk>")
    data.add_argument("--min-count", type=_number(int, "--min-count"), metavar="K", help="words seen fewer than K times become <unk>")
    data.add_argument("--val-fraction", type=_number(float, "--val-fraction"), metavar="F", help="share held out for validation (default 0.2)")
    data.add_argument("--split", choices=["document", "pair"], help="hold out whole documents (default) or the study's shuffled pairs (needs prefix batching)")
    model = parser.add_argument_group("model")
    model.add_argument("--preset", choices=sorted(PRESETS), help="paper: the study's exact model, batching, split and Keras defaults")
    model.add_argument("--embedding-dim", type=_number(int, "--embedding-dim"), metavar="N")
    model.add_argument("--hidden-size", type=_number(int, "--hidden-size"), metavar="N")
    model.add_argument("--layers", type=_number(int, "--layers"), metavar="N")
    model.add_argument("--dropout", type=_number(float, "--dropout"), metavar="P")
    model.add_argument("--head", choices=["linear", "softmax"], help="linear: raw outputs are the prediction (the study's); softmax: probabilities")
    model.add_argument("--init", choices=["keras", "pytorch"], help="weight initialization defaults to copy")
    objective = parser.add_argument_group("objective")
    objective.add_argument("--loss", choices=LOSSES, help="base loss (default ce; the paper preset: mse)")
    objective.add_argument("--loss-param", type=_number(float, "--loss-param"), metavar="X", help="alpha, beta or gamma's parameter (1 = cross-entropy)")
    objective.add_argument("--regularizer", choices=REGULARIZERS, help="added term (label-smoothing: weight is ε)")
    if weight:
        objective.add_argument("--weight", type=_weight, metavar="W", help="regularizer weight, finite and ≥ 0 (0, 1e-7, 10, 100)")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=_number(int, "--epochs"), metavar="N")
    train.add_argument("--batch-size", type=_number(int, "--batch-size"), metavar="B")
    train.add_argument("--lr", type=_number(float, "--lr"), metavar="LR")
    train.add_argument("--seed", type=_number(int, "--seed"), metavar="S")
    train.add_argument("--device", metavar="D", help="auto, cpu, cuda or cuda:N (default auto)")
    train.add_argument("--batching", choices=["document", "prefix"], help="document (fast, default) or prefix (the study's n-grams)")
    train.add_argument("--log-every", type=_number(int, "--log-every"), metavar="N", help="batches per live-metrics window")
    train.add_argument("--compile", choices=["auto", "on", "off"],
                       help="fuse the output head's math with torch.compile: auto (on CUDA only, default), on, off")
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
    info.add_argument("--corpus", nargs="+", metavar="PATH")
    info.add_argument("--column")
    info.add_argument("--max-vocab", type=_number(int, "--max-vocab"), metavar="N")
    info.add_argument("--min-count", type=_number(int, "--min-count"), metavar="K")
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


RESUME_OPTIONS = ("epochs", "device", "corpus")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, option) for option, key in CONFIG_OPTIONS.items() if getattr(args, option, None) is not None}


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
    overrides = {**_overrides(args), **(extra or {})}
    config = build_run_config(name or "unnamed", args.preset, overrides)
    if name is None:
        config = build_run_config(unique_name(Path(args.checkpoints), default_run_name(config)), args.preset, overrides)
    return config


def cmd_train(args: argparse.Namespace) -> int:
    from engine.trainer import Trainer

    checkpoints = Path(args.checkpoints)
    if args.resume:
        given = _overrides(args)
        fixed = sorted(option for option, key in CONFIG_OPTIONS.items() if key in given and option not in RESUME_OPTIONS)
        if fixed or args.preset or args.name:
            named = ", ".join("--" + option.replace("_", "-") for option in fixed + ["preset"] * bool(args.preset) + ["name"] * bool(args.name))
            raise UserError(f"{named} cannot change when resuming: a resumed run keeps its configuration; only --epochs, --device and --corpus apply.")
        trainer = Trainer.resume(checkpoints, args.resume, epochs=args.epochs, device=args.device, corpus_paths=args.corpus)
    else:
        trainer = Trainer.new(_config_for(args, args.name), checkpoints)
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
    checkpoints = Path(args.checkpoints)
    configs = [_config_for(args, f"{args.name}-w{weight:g}" if args.name else None, {"objective.weight": weight}) for weight in weights]
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
    with _stop_on_signals(trainer.stop):
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
                outcome.status, outcome.exit_code = "stopped", EXIT_STOPPED
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
    """While active, SIGINT and SIGTERM call ``stop`` once; a second SIGINT interrupts at once."""

    def __init__(self, stop: Callable[[], None]):
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.stopping:
            raise KeyboardInterrupt
        self.stopping = True
        print("\nstopping after this batch; the checkpoint will be saved (Ctrl-C again to abort)", file=sys.stderr)
        self.stop()

    def __enter__(self):
        self.stopping = False
        for signum in (signal.SIGINT, signal.SIGTERM):
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
    runs = [load_run(Path(args.checkpoints), name, device) for name in args.runs]
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

    listings = list_runs(Path(args.checkpoints))
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

