"""``lm-explorer runs`` (every run and whether it is alive) and ``lm-explorer stop`` (ask a run to stop)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cli.common import DEFAULT_CHECKPOINTS, ArgumentParser, checkpoints_folder
from engine.metric_table import cells, metrics

RUNS_METRICS = metrics("val_loss", "accuracy", "distinct_predictions")
"""The latest metrics each row of ``lm-explorer runs`` shows."""


def add_parsers(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """The ``stop`` and ``runs`` subcommands."""
    stop = commands.add_parser(
        "stop", help="stop a training or queued run", description="Ask a run to stop; a training run saves a checkpoint."
    )
    stop.add_argument("run", metavar="RUN")
    stop.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    runs = commands.add_parser(
        "runs", help="list runs and which are alive", description="List the runs under --checkpoints, alive or not."
    )
    runs.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    runs.add_argument("--json", action="store_true")


def cmd_stop(args: argparse.Namespace) -> int:
    from engine.jobs.controller import Controller

    print(Controller(Path(args.checkpoints)).stop(args.run))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from engine.formatting import objective_label, text_table
    from engine.runs.view import RunReader

    views = RunReader(checkpoints_folder(args.checkpoints, create=False)).views()
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
                [
                    view.name,
                    "–",
                    "–",
                    str(view.status or "unreadable"),
                    "–",
                    *cells({}, RUNS_METRICS),
                    "–",
                    view.problem or view.trainer,
                ]
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
                *cells(m, RUNS_METRICS),
                record.updated if record else "–",
                view.trainer,
            ]
        )
    print(
        text_table(
            ["run", "objective", "weight", "status", "epochs", *(metric.header for metric in RUNS_METRICS), "updated", "trainer"],
            rows,
        )
    )
    return 0
