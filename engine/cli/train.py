"""``lm-explorer train`` (one run in the foreground, or a saved one resumed) and ``lm-explorer sweep`` (a grid of runs:
weights × seeds × any ``--vary SETTING=V1,V2,…``)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

from engine.cli.common import DEFAULT_CHECKPOINTS, ArgumentParser, StopOnSignals, checkpoints_folder
from engine.cli.watch import watch
from engine.config.grid import WEIGHT, Axis, describe, grid_points, parse_vary, seed_axis, varying, weight_axis
from engine.config.models import RunConfig
from engine.config.presets import PRESETS, build_run_config
from engine.config.settings import add_options, given_overrides, setting, settings
from engine.errors import UserError
from engine.exit_codes import exit_code
from engine.jobs.executors import add_executor_options, executor_for
from engine.metric_table import cells, metrics
from engine.objective.terms import REGULARIZERS
from engine.runs.names import check_name, default_run_name, grid_names

if TYPE_CHECKING:
    from engine.jobs.controller import Controller
    from engine.jobs.placement import Slot
    from engine.runs.record import RunRecord
    from engine.runs.view import RunView

SUMMARY_METRICS = metrics("train_loss", "val_loss", "entropy", "kl", "accuracy", "distinct_predictions")
SUMMARY_COLUMNS = ["epochs", *(metric.header for metric in SUMMARY_METRICS)]


def add_parsers(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """The ``train`` and ``sweep`` subcommands."""
    train = commands.add_parser("train", help="train one run", description="Train one run and save it under --checkpoints.")
    _training_options(train)
    train.add_argument("--resume", metavar="RUN", help="continue a saved run (with --epochs: train it further)")

    sweep = commands.add_parser(
        "sweep",
        help="a grid of runs (weights × seeds × --vary), then a comparison",
        description="Train one run per combination of --weights, --seeds and each --vary, and compare them.",
    )
    _training_options(sweep, leave_out=("objective.weight", "objective.epsilon", "train.device"))
    sweep.add_argument("--weights", metavar="W,W,…", help="comma-separated regularizer weights, e.g. 1e-7,1,10,100")
    sweep.add_argument("--seeds", metavar="S,S-S,…", help="seeds as a list and ranges, e.g. 0-4 or 0,2,5 (default 0)")
    sweep.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="SETTING=V,V,…",
        help="one more setting's values, e.g. objective.regularizer=kl,entropy or train.lr=1e-3,3e-3 (repeatable)",
    )
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
    sweep.add_argument(
        "--resume-queue",
        action="store_true",
        help="instead of new runs: start the queued runs whose runner died and resume the interrupted ones",
    )
    add_executor_options(sweep)


def _training_options(parser: argparse.ArgumentParser, leave_out: tuple[str, ...] = ()) -> None:
    """The options train and sweep share: one per setting (:mod:`engine.config.settings`) but ``leave_out``, then the run's own."""
    add_options(parser, [item.key for item in settings() if item.key not in leave_out])
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="paper: the study's exact model, batching, split and Keras defaults; transformer: a small transformer where objectives can differ",
    )
    parser.add_argument(
        "--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR", help="where runs are saved (default ./checkpoints)"
    )
    parser.add_argument("--name", metavar="RUN", help="run name (default: objective, weight and time)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")


def _config_for(args: argparse.Namespace, name: str | None, extra: dict[str, Any] | None = None) -> RunConfig:
    """The run's config from the options; without a ``name``, a default one whose folder is reserved at once."""
    from engine.runs.protocol import reserve

    config = build_run_config(
        "unnamed" if name is None else check_name(name, "--name"), args.preset, {**given_overrides(args), **(extra or {})}
    )
    if name is None:
        checkpoints = checkpoints_folder(args.checkpoints, create=True)
        config = config.model_copy(update={"name": reserve(checkpoints, default_run_name(config))})
    return config


def cmd_train(args: argparse.Namespace) -> int:
    from engine.training.trainer import Trainer

    checkpoints = checkpoints_folder(args.checkpoints, create=False)
    if args.resume is not None:
        given = given_overrides(args)
        fixed = sorted(item.flag for item in settings() if item.key in given and not item.resumable)
        fixed += ["--preset"] * bool(args.preset) + ["--name"] * (args.name is not None)
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
    outcome = watch(trainer, quiet=args.json)
    if args.json:
        print(json.dumps(outcome.as_json()))
    else:
        print(outcome.table())
    return outcome.exit_code


def cmd_sweep(args: argparse.Namespace) -> int:
    """Queue one run per weight and start them through the controller, ``--parallel`` at once (or detached)."""
    from engine.jobs.controller import Controller
    from engine.jobs.placement import parse_parallel

    checkpoints_folder(args.checkpoints, create=False)
    parallel = parse_parallel(args.parallel)
    device = args.device or "auto"
    executor = executor_for(args.executor, args.address)
    if args.resume_queue:
        if args.weights is not None or args.seeds is not None or args.vary or args.detach:
            raise UserError(
                "--resume-queue starts the runs already in --checkpoints; give it without --weights, --seeds, --vary and --detach."
            )
        controller = Controller(checkpoints_folder(args.checkpoints, create=False), executor)
        names = controller.orphans()
        if not names:
            print(f"no queued or interrupted runs in {args.checkpoints}", file=sys.stderr)
            return 0
    else:
        configs = _sweep_configs(args)
        controller = Controller(checkpoints_folder(args.checkpoints, create=True), executor)
        names = controller.queue(configs, rename=args.name is None)
    if args.detach:
        controller.launch_runner(names, parallel, device, args.stack)
        print(json.dumps({"runs": names}) if args.json else f"queued {', '.join(names)}; 'lm-explorer runs' shows them")
        return 0
    with StopOnSignals(lambda: None) as signals:

        def stopping() -> bool:
            return signals.received is not None

        report = None if args.json else _report_run
        if args.resume_queue:
            statuses = controller.resume_queue(parallel, device, report, stopping)
        else:
            statuses = controller.run_queue(names, parallel, device, report=report, stopping=stopping, stack=args.stack)
    views = [controller.runs.view(name) for name in names]
    refused = [view for view in views if view.record is None and view.status == "failed"]
    if refused and len(refused) == len(views):
        raise UserError(refused[0].message or f"Run {refused[0].name} did not start.")
    if args.json:
        print(json.dumps({"runs": [_run_json(controller, view) for view in views]}))
    else:
        from engine.formatting import objective_label, text_table

        rows = [
            [
                view.name,
                objective_label(view.config.objective) if view.config else "–",
                f"{view.config.objective.strength:g}" if view.config else "–",
                str(view.status),
                *_summary_cells(view.record),
            ]
            for view in views
        ]
        print(text_table(["run", "objective", "weight", "status", *SUMMARY_COLUMNS], rows))
    codes = [exit_code(status, hangup=signals.received == signal.SIGHUP) for status in statuses.values()]
    return max(codes, key=lambda code: (code == 1, code))


def _sweep_configs(args: argparse.Namespace) -> list[RunConfig]:
    """One config per point of the grid (:func:`sweep_axes`), named after what varies (``--name`` or by default); the count
    and what makes it are said on stderr before anything is queued."""
    axes = sweep_axes(args)
    points = grid_points(axes)
    given = {key: value for key, value in given_overrides(args).items() if key != "train.device"}  # placed per job instead
    stem = None if args.name is None else check_name(args.name, "--name")
    configs = [build_run_config("unnamed", args.preset, {**given, **point}) for point in points]
    if WEIGHT in varying(axes) and any(config.objective.regularizer == "none" for config in configs):
        *others, last = [name for name in REGULARIZERS if name != "none"]
        raise UserError(
            f"A sweep varies the regularizer's weight, and --regularizer is none; give --regularizer {', '.join(others)} or {last}."
        )
    names = grid_names(stem, configs, varying(axes)) if len(configs) > 1 else [stem or default_run_name(configs[0])]
    if not args.json:
        print(f"sweep: {len(configs)} run{'s' * (len(configs) != 1)} ({describe(axes)}) into {args.checkpoints}", file=sys.stderr)
    return [config.model_copy(update={"name": name}) for config, name in zip(configs, names, strict=True)]


def sweep_axes(args: argparse.Namespace) -> list[Axis]:
    """The grid ``sweep``'s options ask for: ``--weights``, then each ``--vary``, then ``--seeds`` (a setting given
    as an axis and as its own option is refused)."""
    axes = [weight_axis(args.weights)] if args.weights is not None else []
    axes += [parse_vary(text) for text in args.vary]
    if args.seeds is not None:
        axes.append(seed_axis(args.seeds))
    fixed = given_overrides(args)
    for axis in axes:
        if axis.key in fixed:
            raise UserError(f"{axis.key} is both varied and given as {setting(axis.key).flag}; give its values once.")
    if not axes:
        raise UserError(
            "A sweep needs something to vary: give --weights, --seeds or --vary SETTING=V1,V2 (or --resume-queue to start the queued runs)."
        )
    return axes


def _report_run(name: str, status: str, slot: Slot | None) -> None:
    print(
        f"{name}: {status}"
        + (f" on {slot.device} ({slot.threads} thread{'s' * (slot.threads > 1)})" if status == "training" and slot else ""),
        file=sys.stderr,
        flush=True,
    )


def _run_json(controller: Controller, view: RunView) -> dict[str, Any]:
    from engine.objective.metrics import definitions_for
    from engine.runs.checkpoint import RunDirectory

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
    return [str(record.epochs_completed if record else 0), *cells(record.metrics if record else {}, SUMMARY_METRICS)]
