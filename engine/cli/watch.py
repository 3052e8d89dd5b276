"""Watching a trainer in the foreground: progress on stderr, Ctrl-C or SIGTERM stop it with a checkpoint, and its outcome."""

from __future__ import annotations

import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from engine.cli.common import StopOnSignals
from engine.config.models import RunConfig
from engine.errors import UserError
from engine.exit_codes import exit_code
from engine.metric_table import COLLAPSE_SIGN, EPOCH_SUMMARY, cells, metrics

if TYPE_CHECKING:
    from engine.training.events import EpochMetrics, RunStarted
    from engine.training.trainer import Trainer


PROGRESS_METRICS = metrics("train_loss", "val_loss", "entropy", "kl", "accuracy", "distinct_predictions")
"""What the progress line says at each epoch's end."""


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
        from engine.formatting import text_table

        headers = ["epoch", *(metric.header for metric in EPOCH_SUMMARY)]
        rows = [[str(e["epoch"]), *cells(e, EPOCH_SUMMARY)] for e in self.epochs]
        lines = [f"run {self.name}: {self.status}" + (f" — {self.message}" if self.message else "")]
        if self.definitions:
            lines.append(f"entropy and kl on validation, definition: {self.definitions['entropy']}")
        if rows:
            lines.append(text_table(headers, rows))
        return "\n".join(lines)


def watch(trainer: Trainer, quiet: bool) -> Outcome:
    """Consume a trainer's events: progress on stderr, Ctrl-C/SIGTERM stop it with a checkpoint."""
    from engine.training.events import FINAL_EVENTS, EpochMetrics, RunFailed, RunStarted, RunStopped, StepMetrics, final_status

    outcome = Outcome(trainer.config)
    progress = Progress(enabled=not quiet)
    with StopOnSignals(trainer.stop) as signals:
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
                outcome.exit_code = exit_code(outcome.status, hangup=signals.received == signal.SIGHUP)
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
        if not self.enabled:
            return
        m = event.metrics
        shown = "  ".join(f"{metric.header} {metric.render(m[metric.key])}" for metric in PROGRESS_METRICS)
        print(f"\r{self.name} epoch {event.epoch}: {shown}" + " " * 10, file=sys.stderr)
        if event.collapsed:
            print(
                f"warning: {self.name} predicts only {int(m[COLLAPSE_SIGN.key])} distinct words on validation: it has collapsed.",
                file=sys.stderr,
            )

    def finish(self, outcome: Outcome) -> None:
        if self.enabled:
            print(f"{outcome.name}: {outcome.status} in {time.monotonic() - self.started:.1f} s", file=sys.stderr)
