"""The headless commands: train, sweep, generate, runs, stop, delete, rename, corpus-info, reproduce.

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
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from engine.config import (
    PRESETS,
    RunConfig,
    build_run_config,
    describe_validation_error,
    parse_weights,
)
from engine.errors import UserError
from engine.manage import add_manage_parsers, cmd_delete, cmd_rename
from engine.reproduce import add_reproduce_parser, cmd_reproduce
from engine.safe_io import describe_os_error
from engine.settings import add_options, given_overrides, settings
from engine.terms import REGULARIZERS

if TYPE_CHECKING:  # imported where used, so that a command loads only what it needs
    from engine.checkpoint import RunRecord
    from engine.controller import Controller, RunView, Slot
    from engine.events import EpochMetrics, RunStarted
    from engine.generate import Continuation
    from engine.trainer import Trainer

DEFAULT_CHECKPOINTS = "checkpoints"
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_STOPPED = 130
EXIT_HANGUP = 129
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one sentence and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument (\S+): \1 ", r"\1 ", message)  # a setting's own sentence names its flag already
        raise UserError(f"{self.prog}: {message.rstrip('.')}; see '{self.prog} --help'.")


def _number(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a {'whole number' if kind is int else 'number'}, not {text!r}"
            ) from None

    return convert


def _training_options(parser: argparse.ArgumentParser, leave_out: tuple[str, ...] = ()) -> None:
    """The options train and sweep share: one per setting (:mod:`engine.settings`) but ``leave_out``, then the run's own."""
    add_options(parser, [item.key for item in settings() if item.key not in leave_out])
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="paper: the study's exact model, batching, split and Keras defaults"
    )
    parser.add_argument(
        "--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR", help="where runs are saved (default ./checkpoints)"
    )
    parser.add_argument("--name", metavar="RUN", help="run name (default: objective, weight and time)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lm-explorer", description="Train word-level LSTM language models under entropy-based objectives, and compare them."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    train = commands.add_parser("train", help="train one run", description="Train one run and save it under --checkpoints.")
    _training_options(train)
    train.add_argument("--resume", metavar="RUN", help="continue a saved run (with --epochs: train it further)")

    sweep = commands.add_parser(
        "sweep",
        help="one run per regularizer weight, then a comparison",
        description="Train one run per weight and compare them.",
    )
    _training_options(sweep, leave_out=("objective.weight", "objective.epsilon", "train.device"))
    sweep.add_argument("--weights", required=True, metavar="W,W,…", help="comma-separated weights, e.g. 1e-7,1,10,100")
    sweep.add_argument(
        "--device", metavar="D", help="auto, cpu, cuda, cuda:N, or CUDA devices to spread the runs over: cuda:0,cuda:1"
    )
    sweep.add_argument(
        "--parallel",
        default="auto",
        metavar="N",
        help="trainer processes at once (default auto: every one on CUDA, one per core on CPU)",
    )
    sweep.add_argument(
        "--stack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train runs that differ only in their objective as one stacked model (default: on CUDA only)",
    )
    sweep.add_argument("--detach", action="store_true", help="queue the runs, start them in the background and return at once")

    stop = commands.add_parser(
        "stop", help="stop a training or queued run", description="Ask a run to stop; a training run saves a checkpoint."
    )
    stop.add_argument("run", metavar="RUN")
    stop.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    add_manage_parsers(commands)

    generate = commands.add_parser(
        "generate", help="continue seed texts with saved runs", description="Continue seed texts with one or more saved runs."
    )
    generate.add_argument("runs", nargs="+", metavar="RUN")
    generate.add_argument("--text", action="append", required=True, metavar="SEED", help="a seed text (repeat for several)")
    generate.add_argument("--words", type=_number(int, "--words"), default=10, metavar="N", help="words to add (default 10)")
    generate.add_argument(
        "--top-k",
        type=_number(int, "--top-k"),
        metavar="K",
        help="sample among the K best instead of greedy (5: the study's sampler)",
    )
    generate.add_argument("--temperature", type=_number(float, "--temperature"), default=1.0, metavar="T")
    generate.add_argument("--seed", type=_number(int, "--seed"), default=0, metavar="S", help="sampling seed")
    generate.add_argument("--details", action="store_true", help="also print each step's entropy and top-3 alternatives")
    generate.add_argument("--device", default="cpu", metavar="D")
    generate.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    generate.add_argument("--json", action="store_true")

    runs = commands.add_parser(
        "runs", help="list runs and which are alive", description="List the runs under --checkpoints, alive or not."
    )
    runs.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    runs.add_argument("--json", action="store_true")

    info = commands.add_parser(
        "corpus-info",
        help="the study's corpus counts",
        description="Documents, vocabulary (+1 padding), pairs and longest document.",
    )
    add_options(info, ["corpus.paths", "corpus.column", "corpus.max_vocab", "corpus.min_count"])
    info.add_argument("--json", action="store_true")

    add_reproduce_parser(commands)
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
    weight = f"-w{config.objective.strength:g}" if config.objective.regularizer != "none" else ""
    return f"{label}{weight}-{datetime.now():%Y%m%d-%H%M%S}"


def unique_name(checkpoints: Path, name: str) -> str:
    """A free name from ``name``, its folder reserved at once (see :func:`engine.rundir.reserve`)."""
    from engine.rundir import reserve

    return reserve(checkpoints, name)


def _config_for(args: argparse.Namespace, name: str | None, extra: dict[str, Any] | None = None) -> RunConfig:
    """The run's config from the options; without a ``name``, a default one whose folder is reserved at once."""
    config = build_run_config(name or "unnamed", args.preset, {**given_overrides(args), **(extra or {})})
    if name is None:
        checkpoints = checkpoints_folder(args.checkpoints, create=True)
        config = config.model_copy(update={"name": unique_name(checkpoints, default_run_name(config))})
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
            raise UserError(
                f"--checkpoints {text!r} cannot be made ({describe_os_error(error)}); give a folder you can write to."
            ) from None
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
            raise UserError(
                f"{', '.join(fixed)} cannot change when resuming: a resumed run keeps its configuration; only {allowed} apply."
            )
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
    """Queue one run per weight and start them through the controller, ``--parallel`` at once (or detached)."""
    from engine.controller import Controller, parse_parallel
    from engine.report import objective_label, text_table

    weights = parse_weights(args.weights)
    checkpoints_folder(args.checkpoints, create=False)
    parallel = parse_parallel(args.parallel)
    device = args.device or "auto"
    given = {key: value for key, value in given_overrides(args).items() if key != "train.device"}  # placed per job instead
    configs = []
    for weight in weights:
        config = build_run_config("unnamed", args.preset, {**given, "objective.weight": weight})
        configs.append(config.model_copy(update={"name": f"{args.name}-w{weight:g}" if args.name else default_run_name(config)}))
    if configs[0].objective.regularizer == "none":
        *others, last = [name for name in REGULARIZERS if name != "none"]
        raise UserError(
            f"A sweep varies the regularizer's weight, and --regularizer is none; give --regularizer {', '.join(others)} or {last}."
        )
    controller = Controller(checkpoints_folder(args.checkpoints, create=True))
    names = controller.queue(configs, rename=not args.name)
    if args.detach:
        controller.launch_runner(names, parallel, device, args.stack)
        print(json.dumps({"runs": names}) if args.json else f"queued {', '.join(names)}; 'lm-explorer runs' shows them")
        return 0
    with _stop_on_signals(lambda: None) as signals:
        statuses = controller.run_queue(
            names,
            parallel,
            device,
            report=None if args.json else _report_run,
            stopping=lambda: signals.received is not None,
            stack=args.stack,
        )
    views = [controller.view(name) for name in names]
    refused = [view for view in views if view.record is None and view.status == "failed"]
    if refused and len(refused) == len(views):
        raise UserError(refused[0].message or f"Run {refused[0].name} did not start.")
    if args.json:
        print(json.dumps({"runs": [_run_json(controller, view) for view in views]}))
    else:
        rows = [
            [
                view.name,
                objective_label(configs[i].objective),
                f"{configs[i].objective.strength:g}",
                str(view.status),
                *_summary_cells(view.record),
            ]
            for i, view in enumerate(views)
        ]
        print(text_table(["run", "objective", "weight", "status", *SUMMARY_COLUMNS], rows))
    codes = {
        "finished": 0,
        "stopped": EXIT_HANGUP if signals.received == signal.SIGHUP else EXIT_STOPPED,
        "diverged": EXIT_DIVERGED,
    }
    return max((codes.get(status or "failed", 1) for status in statuses.values()), key=lambda code: (code == 1, code))


def _report_run(name: str, status: str, slot: Slot | None) -> None:
    print(
        f"{name}: {status}"
        + (f" on {slot.device} ({slot.threads} thread{'s' * (slot.threads > 1)})" if status == "training" and slot else ""),
        file=sys.stderr,
        flush=True,
    )


def _run_json(controller: Controller, view: RunView) -> dict[str, Any]:
    from engine.checkpoint import RunDirectory
    from engine.metrics import definitions_for

    record = view.record
    epochs = [
        {key: value for key, value in line.items() if key != "kind"}
        for line in RunDirectory(controller.checkpoints, view.name).read_metrics()
        if line.get("kind") == "epoch"
    ]
    return {
        "run": view.name,
        "status": view.status,
        "message": view.message,
        "config": view.config.model_dump(mode="json") if view.config else None,
        "definitions": definitions_for(record.config.model.head) if record else {},
        "epochs": epochs,
    }


def _summary_cells(record: RunRecord | None) -> list[str]:
    from engine.report import distinct_label, number

    m = record.metrics if record else {}
    return [
        str(record.epochs_completed if record else 0),
        number(m.get("train_loss")),
        number(m.get("val_loss")),
        number(m.get("entropy")),
        number(m.get("kl")),
        number(m.get("accuracy")),
        distinct_label(m.get("distinct_predictions")),
    ]


def cmd_stop(args: argparse.Namespace) -> int:
    from engine.controller import Controller

    print(Controller(Path(args.checkpoints)).stop(args.run))
    return 0


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
        return {
            "run": self.name,
            "status": self.status,
            "message": self.message,
            "config": self.config.model_dump(mode="json"),
            "definitions": self.definitions,
            "epochs": self.epochs,
        }

    def table(self) -> str:
        from engine.report import distinct_label, number, text_table

        headers = ["epoch", "train_loss", "val_loss", "entropy", "kl", "accuracy", "perplexity", "distinct"]
        rows = [
            [
                str(e["epoch"]),
                number(e["train_loss"]),
                number(e["val_loss"]),
                number(e["entropy"]),
                number(e["kl"]),
                number(e["accuracy"]),
                number(e["perplexity"]),
                distinct_label(e["distinct_predictions"]),
            ]
            for e in self.epochs
        ]
        lines = [f"run {self.name}: {self.status}" + (f" — {self.message}" if self.message else "")]
        if self.definitions:
            lines.append(f"entropy and kl on validation, definition: {self.definitions['entropy']}")
        if rows:
            lines.append(text_table(headers, rows))
        return "\n".join(lines)


def _watch(trainer: Trainer, quiet: bool) -> Outcome:
    """Consume a trainer's events: progress on stderr, Ctrl-C/SIGTERM stop it with a checkpoint."""
    from engine.events import FINAL_EVENTS, EpochMetrics, RunFailed, RunStarted, RunStopped, StepMetrics
    from engine.rundir import final_status

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
            elif isinstance(event, RunFailed) and event.user_error:
                raise UserError(event.message)
            elif isinstance(event, FINAL_EVENTS):
                outcome.status = final_status(event)
                outcome.exit_code = {
                    "finished": 0,
                    "diverged": EXIT_DIVERGED,
                    "failed": 1,
                    "stopped": EXIT_HANGUP if signals.received == signal.SIGHUP else EXIT_STOPPED,
                }[outcome.status]
                outcome.message = getattr(event, "message", None)
                if isinstance(event, RunStopped):
                    outcome.message = f"stopped at epoch {event.epoch:.2f}; resume with --resume {event.run_name}"
                elif isinstance(event, RunFailed):
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

    def start(self, event: RunStarted) -> None:
        self.name = event.run_name
        self.started = time.monotonic()
        if self.enabled:
            print(
                f"{event.run_name}: {event.train_pairs} training pairs, {event.val_pairs} validation, vocabulary {event.vocab_size}, "
                f"{event.steps_per_epoch} batches/epoch on {event.device}, output head: {event.fused_head}",
                file=sys.stderr,
            )

    def update(self, step: int, total: int, loss: float | None) -> None:
        if not self.live:
            return
        filled = int(self.WIDTH * step / max(total, 1))
        rate = step / max(time.monotonic() - self.started, 1e-9)
        print(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {step}/{total} batches  loss {loss:.4g}  {rate:.0f} batches/s ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def epoch(self, event: EpochMetrics) -> None:
        from engine.report import distinct_label, number

        if not self.enabled:
            return
        m = event.metrics
        print(
            f"\r{self.name} epoch {event.epoch}: train_loss {number(m['train_loss'])}  val_loss {number(m['val_loss'])}  "
            f"entropy {number(m['entropy'])}  kl {number(m['kl'])}  accuracy {number(m['accuracy'])}  "
            f"distinct {distinct_label(m['distinct_predictions'])}" + " " * 10,
            file=sys.stderr,
        )
        if event.collapsed:
            print(
                f"warning: {self.name} predicts only {int(m['distinct_predictions'])} distinct words on validation: it has collapsed.",
                file=sys.stderr,
            )

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

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            print("\nstopping after this batch; the checkpoint will be saved", file=sys.stderr)
        self.stop()

    def __enter__(self) -> _stop_on_signals:
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
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
        print(
            json.dumps(
                {
                    "strategy": strategy.name,
                    "words": args.words,
                    "continuations": [
                        {
                            "seed": seed,
                            "run": name,
                            "text": c.text,
                            "unknown_words": c.unknown_words,
                            "entropy_definition": c.entropy_definition,
                            "steps": [
                                {
                                    "word": s.word,
                                    "probability": s.probability,
                                    "entropy": s.entropy,
                                    "alternatives": [{"word": a.word, "probability": a.probability} for a in s.alternatives],
                                }
                                for s in c.steps
                            ],
                        }
                        for (seed, name), c in table.items()
                    ],
                }
            )
        )
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


def _cell(continuation: Continuation) -> str:
    unknown = f"[unknown: {', '.join(continuation.unknown_words)}] " if continuation.unknown_words else ""
    return unknown + continuation.text


def cmd_runs(args: argparse.Namespace) -> int:
    from engine.controller import Controller
    from engine.report import distinct_label, number, objective_label, text_table

    views = Controller(checkpoints_folder(args.checkpoints, create=False)).views()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "run": view.name,
                        "status": view.status,
                        "alive": view.alive,
                        "pid": view.pid,
                        "host": view.host,
                        "device": view.device,
                        "progress": view.progress,
                        "problem": view.problem,
                        "record": view.record.model_dump(mode="json", exclude={"vocab"}) if view.record else None,
                    }
                    for view in views
                ]
            )
        )
        return 0
    if not views:
        print(f"no runs in {args.checkpoints}")
        return 0
    rows = []
    for view in views:
        record, config = view.record, view.config
        if config is None:
            rows.append(
                [view.name, "–", "–", str(view.status or "unreadable"), "–", "–", "–", "–", "–", view.problem or view.trainer]
            )
            continue
        m = record.metrics if record else {}
        epochs = view.progress * config.train.epochs if view.alive or record is None else record.epoch_progress
        rows.append(
            [
                view.name,
                objective_label(config.objective),
                f"{config.objective.strength:g}",
                str(view.status),
                f"{epochs:.3g}/{config.train.epochs}",
                number(m.get("val_loss")),
                number(m.get("accuracy")),
                distinct_label(m.get("distinct_predictions")),
                record.updated if record else "–",
                view.trainer,
            ]
        )
    print(
        text_table(
            ["run", "objective", "weight", "status", "epochs", "val_loss", "accuracy", "distinct", "updated", "trainer"], rows
        )
    )
    return 0


def cmd_corpus_info(args: argparse.Namespace) -> int:
    from engine.config import CorpusConfig
    from engine.corpus import load_corpus

    try:
        config = CorpusConfig(
            paths=args.corpus or [], column=args.column, max_vocab=args.max_vocab, min_count=args.min_count or 1
        )
    except ValidationError as error:
        raise UserError(describe_validation_error(error)) from None
    corpus = load_corpus(config)
    stats = corpus.stats
    if args.json:
        print(
            json.dumps(
                {
                    "sources": corpus.sources,
                    "documents": stats.documents,
                    "vocab_size": stats.vocab_size,
                    "pairs": stats.pairs,
                    "longest": stats.longest,
                    "fingerprint": corpus.fingerprint,
                }
            )
        )
        return 0
    print(
        "\n".join(
            [
                f"corpus:        {'; '.join(corpus.sources)}",
                f"documents:     {stats.documents}",
                f"vocabulary:    {stats.vocab_size} (distinct words + 1 for padding, as Keras counts)",
                f"pairs:         {stats.pairs}",
                f"longest:       {stats.longest} words",
            ]
        )
    )
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train,
    "sweep": cmd_sweep,
    "generate": cmd_generate,
    "runs": cmd_runs,
    "stop": cmd_stop,
    "delete": cmd_delete,
    "rename": cmd_rename,
    "corpus-info": cmd_corpus_info,
    "reproduce": cmd_reproduce,
}
