"""The one training loop, as a stream of typed events (:mod:`engine.training.events`).

Both front ends iterate :meth:`Trainer.events`; :meth:`Trainer.stop` (thread-safe), or a stop
request left in the run folder by any process (:mod:`engine.runs.protocol`), ends the run between batches
with a checkpoint. While it trains, the trainer holds the run's lock and beats its heartbeat.
A run is saved when it starts, at every epoch end and when it stops; a non-finite loss ends it as diverged and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.config.models import CorpusConfig, RunConfig, TrainConfig
from engine.devices import check_device, cuda_devices
from engine.errors import UserError
from engine.lm.batching import Batch, DocumentBatches, PrefixBatches, iterate
from engine.lm.corpus import Corpus, load_corpus, split_documents, split_pairs
from engine.lm.model import LanguageModel, check_inputs_fit, check_model_fits
from engine.lm.stacked_model import adam
from engine.metric_table import collapsed, line_fields
from engine.objective.head import Fusion, compile_key, head_loss_and_metrics, plan_fusion
from engine.objective.metrics import MetricTotals, definitions_for
from engine.objective.total import Objective
from engine.runs import protocol
from engine.runs.checkpoint import PartialEpoch, RunDirectory, RunRecord, build_model, load_optimizer_state, versions
from engine.runs.metrics_lines import MAX_STEP
from engine.training.events import (
    CheckpointSaved,
    EpochMetrics,
    Event,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepMetrics,
)

EVAL_BATCH_FACTOR = 4


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` when this machine has it (:func:`engine.devices.check_device`)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(name, cuda_devices()))


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling and dropout seed of one epoch, so a resumed run replays the same order.

    ``(seed · 1000003 + epoch) mod 2⁶³``: unchanged for every seed below about 9.2e12, and within
    what ``torch.manual_seed`` and numpy take for every seed up to :data:`~engine.config.models.MAX_SEED`.
    """
    return (seed * 1_000_003 + epoch) % 2**63


@dataclass
class Split:
    """The training and validation batches of a run."""

    train: DocumentBatches | PrefixBatches
    val: DocumentBatches | PrefixBatches


def make_split(config: RunConfig, corpus: Corpus) -> Split:
    """Cut the corpus as the config says and present both parts in its batching."""
    width = corpus.stats.longest - 1
    batch, eval_batch = config.train.batch_size, config.train.batch_size * EVAL_BATCH_FACTOR
    if config.corpus.split == "pair":
        train_pairs, val_pairs = split_pairs(corpus, config.corpus.val_fraction, config.train.seed)
        return Split(PrefixBatches(corpus, train_pairs, batch, width), PrefixBatches(corpus, val_pairs, eval_batch, width))
    train_docs, val_docs = split_documents(corpus, config.corpus.val_fraction, config.train.seed)
    if config.train.batching == "prefix":
        return Split(
            PrefixBatches.from_documents(corpus, train_docs, batch, width),
            PrefixBatches.from_documents(corpus, val_docs, eval_batch, width),
        )
    return Split(DocumentBatches(corpus, train_docs, batch), DocumentBatches(corpus, val_docs, eval_batch))


@dataclass
class _Training:
    """What a run trains with once :meth:`Trainer._set_up` has built it; ``record`` changes as it trains."""

    device: torch.device
    split: Split
    model: LanguageModel
    optimizer: torch.optim.Optimizer
    objective: Objective
    fusion: Fusion
    record: RunRecord
    vocab_size: int
    steps_per_epoch: int
    total_steps: int
    definitions: dict[str, str]


class Trainer:
    """Trains one run. Build it with :meth:`new` or :meth:`resume`, then iterate :meth:`events`."""

    def __init__(self, config: RunConfig, checkpoints: Path, corpus: Corpus | None, resuming: RunRecord | None):
        self.config = config
        self.directory = RunDirectory(Path(checkpoints), config.name)
        self._corpus = corpus
        self._resuming = resuming
        # read before anything is written: a resume refused later must leave the record as it was
        self._start_wall_s = self._recorded_wall_time(resuming.step) if resuming is not None else 0.0
        self._stop = threading.Event()
        self._started = False  # set once setup is done: only then may a fault mark the saved run failed
        self._writer: protocol.Writer  # set by events() before training starts

    @classmethod
    def new(cls, config: RunConfig, checkpoints: Path, corpus: Corpus | None = None, queued: bool = False) -> Trainer:
        """A fresh run; its name must not be taken in ``checkpoints``.

        Its folder may already exist empty (reserved by :func:`engine.runs.protocol.reserve`), or, with
        ``queued``, holding the ``request.json`` of a sweep that queued it.
        """
        trainer = cls(config, checkpoints, corpus, None)
        protocol.ensure_free(trainer.directory.path, config.name)
        if trainer.directory.exists() or (not queued and protocol.occupied(trainer.directory.path)):
            raise UserError(
                f"A run named {config.name!r} already exists in {str(checkpoints)!r}; choose another --name or --resume it."
            )
        return trainer

    @classmethod
    def resume(
        cls,
        checkpoints: Path,
        name: str,
        epochs: int | None = None,
        device: str | None = None,
        corpus_paths: list[str] | None = None,
        corpus: Corpus | None = None,
    ) -> Trainer:
        """Continue a saved run, optionally to more ``epochs``, on another ``device`` or corpus copy.

        The corpus must be the one the run trained on (same fingerprint of cleaned text).
        """
        directory = RunDirectory(Path(checkpoints), name)
        protocol.ensure_free(directory.path, name)
        record = directory.read_record()
        updates: dict[str, TrainConfig | CorpusConfig] = {}
        if epochs is not None:
            updates["train"] = record.config.train.model_copy(update={"epochs": epochs})
        if device is not None:
            updates["train"] = updates.get("train", record.config.train).model_copy(update={"device": device})
        if corpus_paths:
            updates["corpus"] = record.config.corpus.model_copy(update={"paths": corpus_paths})
        config = record.config.model_copy(update=updates)
        corpus = corpus or load_corpus(config.corpus)
        if corpus.fingerprint != record.corpus_fingerprint:
            raise UserError(
                f"Run {name!r} was trained on another corpus (fingerprint {record.corpus_fingerprint[:12]}…, "
                f"this one is {corpus.fingerprint[:12]}…); resume it with the corpus it was trained on."
            )
        if record.status == "finished" and config.train.epochs <= record.epochs_completed:
            raise UserError(
                f"Run {name!r} already finished its {record.epochs_completed} epochs; give --epochs above that to train it further."
            )
        last_step = record.step + max(0, config.train.epochs - record.epochs_completed) * record.steps_per_epoch
        if last_step > MAX_STEP:
            raise UserError(
                f"Run {name!r} would reach step {last_step:,}, beyond the {MAX_STEP:,} a checkpoint's name can hold; "
                "give fewer --epochs, or remove or restore the run if its run.json says more steps than it trained."
            )
        return cls(config, checkpoints, corpus, record)

    def stop(self) -> None:
        """Ask the run to stop after the current batch (thread-safe)."""
        self._stop.set()

    def events(self) -> Iterator[Event]:
        """Run training, yielding events; ends with exactly one final event.

        The run's lock is held from before the first save until after the last; a run that never
        got to its first save leaves no folder behind (unless a sweep queued it: its request stays).
        """
        writer = protocol.Writer(self.directory.path, self.config.name, self.stop)
        try:
            writer.start()
        except UserError as error:
            yield RunFailed(self.config.name, str(error), user_error=True)
            return
        except OSError as error:
            yield RunFailed(
                self.config.name,
                f"Cannot write the run folder {str(self.directory.path)!r} ({error.strerror}); "
                "choose a --checkpoints folder you can write to.",
                user_error=True,
            )
            return
        self._writer = writer
        try:
            yield from self._guarded()
        finally:
            writer.close()
            if not self.directory.exists() and not os.path.lexists(self.directory.path / protocol.REQUEST_FILE):
                protocol.discard_unsaved(self.directory.path)

    def _guarded(self) -> Iterator[Event]:
        try:
            yield from self._run()
        except UserError as error:
            yield RunFailed(self.config.name, str(error), user_error=True)
        except Exception as error:  # a fault in lm-explorer, not in the input: keep the details
            self._mark_failed(f"{type(error).__name__}: {error}")
            yield RunFailed(
                self.config.name, f"{type(error).__name__}: {error}", user_error=False, details=traceback.format_exc()
            )

    def _run(self) -> Iterator[Event]:
        """Set up, then per epoch: train over its batches, then validate and save (as pytorch/examples' ``train()`` and ``evaluate()``)."""
        config = self.config
        run = self._set_up()
        yield RunStarted(
            config.name,
            config,
            str(run.device),
            run.vocab_size,
            run.split.train.pairs,
            run.split.val.pairs,
            run.steps_per_epoch,
            run.total_steps,
            run.record.step,
            run.definitions,
            run.fusion.description,
        )
        clock = WallClock(self._start_wall_s)
        for epoch in range(run.record.epochs_completed, config.train.epochs):
            clock.start_epoch()
            totals = yield from self._train_epoch(run, epoch, clock)
            if totals is None:  # diverged or stopped mid-epoch: its final event is out
                return
            yield from self._end_epoch(run, epoch, totals, clock)
            if run.record.status == "stopped":
                return
        run.record.status = "finished"
        self.directory.write_record(run.record)
        yield RunFinished(config.name, run.record.metrics)

    def _set_up(self) -> _Training:
        """Device, corpus, split, model and Adam (fresh and saved, or as the record left them), objective and head."""
        config = self.config
        device = resolve_device(config.train.device)
        corpus = self._corpus or load_corpus(config.corpus)
        split = make_split(config, corpus)
        vocab_size = len(corpus.vocab)
        check_model_fits(vocab_size, config.model, f"Run {config.name!r}")
        check_inputs_fit(config.model, corpus.stats.longest - 1, f"Run {config.name!r}")
        torch.manual_seed(config.train.seed)
        if self._resuming is None:
            model = LanguageModel(vocab_size, config.model).to(device)
        else:
            model = build_model(self.directory, self._resuming).to(device)
        optimizer = adam(model.parameters(), config.train.lr, config.train.adam_eps)
        steps_per_epoch = len(split.train)
        if self._resuming is None:
            record = new_record(config, corpus, split)
            self.directory.save(record, model, optimizer)
        else:
            record = self._resuming.model_copy(
                update={"config": config, "status": "training", "message": None, "versions": versions()}
            )
            load_optimizer_state(self.directory, record, optimizer)
            self.directory.write_record(record)  # readers see it training to its new epochs; one that dies reads as interrupted
        definitions = definitions_for(config.model.head)
        total_steps = steps_per_epoch * config.train.epochs
        objective = Objective(config.objective)
        fusion = plan_fusion(device, config.train.compile, compile_key(objective, config.model.head, device))
        fusion.warm_up(objective, config.model.head, vocab_size, device)
        self._started = True
        self._writer.progress(record.step, total_steps, str(device))
        return _Training(
            device, split, model, optimizer, objective, fusion, record, vocab_size, steps_per_epoch, total_steps, definitions
        )

    def _train_epoch(self, run: _Training, epoch: int, clock: WallClock) -> Generator[Event, None, MetricTotals | None]:
        """One pass over the training batches (a resumed run's from where it stopped), a metrics line per window.

        Returns the epoch's training totals, or None when the run diverged or stopped in the epoch.
        """
        config, record = self.config, run.record
        steps_per_epoch = run.steps_per_epoch
        torch.manual_seed(epoch_seed(config.train.seed, epoch))
        run.model.train()
        epoch_totals = MetricTotals.from_state(
            record.partial_epoch.model_dump() if record.partial_epoch else None, run.vocab_size, run.device
        )
        window, window_losses = MetricTotals(), []
        for batch in iterate(run.split.train, epoch_seed(config.train.seed, epoch), skip=record.batch_in_epoch):
            if self._stop.is_set():
                break
            window_losses.append(self._step(run.model, run.optimizer, run.objective, batch.to(run.device), window, run.fusion))
            record.step += 1
            record.batch_in_epoch += 1
            if record.step % config.train.log_every == 0 or record.batch_in_epoch == steps_per_epoch:
                diverged = self._first_non_finite(window_losses, record.step, run.optimizer)
                if diverged is not None:
                    yield self._diverge(record, diverged)
                    return None
                fraction = epoch + record.batch_in_epoch / steps_per_epoch
                live = line_fields(window.summary(), "training")
                self.directory.append_metrics(
                    {"kind": "step", "step": record.step, "epoch": fraction, **live, **clock.line(window.count)}
                )
                self._writer.progress(record.step, run.total_steps)
                yield StepMetrics(config.name, record.step, run.total_steps, fraction, live)
                epoch_totals.merge(window)
                window, window_losses = MetricTotals(), []
        if record.batch_in_epoch < steps_per_epoch:  # stopped mid-epoch: save its running totals
            diverged = self._first_non_finite(window_losses, record.step, run.optimizer)
            if diverged is not None:
                yield self._diverge(record, diverged)
                return None
            epoch_totals.merge(window)
            yield from stop_mid_epoch(
                record, self.directory, epoch_totals, lambda: self.directory.save(record, run.model, run.optimizer)
            )
            return None
        return epoch_totals

    def _end_epoch(self, run: _Training, epoch: int, totals: MetricTotals, clock: WallClock) -> Iterator[Event]:
        """Validate, write the epoch's line and save; a stop asked for during the epoch ends the run here."""
        validation = evaluate(run.model, run.split.val, run.objective, run.device, run.fusion)
        metrics = _epoch_summary(totals, validation)
        yield from close_epoch(
            run.record,
            self.directory,
            epoch,
            metrics,
            clock.epoch_line(),
            self._stop.is_set(),
            lambda: self.directory.save(run.record, run.model, run.optimizer),
            run.total_steps,
            run.definitions,
        )

    @staticmethod
    def _step(
        model: LanguageModel,
        optimizer: torch.optim.Optimizer,
        objective: Objective,
        batch: Batch,
        window: MetricTotals,
        fusion: Fusion,
    ) -> torch.Tensor:
        loss = forward(model, objective, batch, window, fusion)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    @staticmethod
    def _first_non_finite(losses: list[torch.Tensor], last_step: int, optimizer: torch.optim.Optimizer) -> int | None:
        """The step number of the first non-finite loss among the window's; else, when Adam's moments
        are no longer finite (``torch.isfinite``), the window's last step; else None."""
        if not losses:
            return None
        finite = torch.isfinite(torch.stack(losses)).tolist()
        if not all(finite):
            return last_step - len(losses) + 1 + finite.index(False)
        moments = [torch.isfinite(value).all() for state in optimizer.state.values() for value in state.values() if value.dim()]
        if moments and not torch.stack(moments).all():
            return last_step
        return None

    def _recorded_wall_time(self, step: int) -> float:
        """The wall time the run's record reached by ``step``, so that a resumed run's clock goes on from it."""
        lines = self.directory.read_metrics()
        return max((line.get("wall_s", 0.0) for line in lines if line.get("step", 0) <= step), default=0.0)

    def _diverge(self, record: RunRecord, step: int) -> RunDiverged:
        message = divergence_message(record, step)
        self.directory.mark("diverged", message)
        return RunDiverged(self.config.name, step, message)

    def _mark_failed(self, message: str) -> None:
        """Record a fault in the saved run, if this trainer got as far as training it (a refused run is left as it was)."""
        if self._started:
            self.directory.mark("failed", message)


def divergence_message(record: RunRecord, step: int) -> str:
    """What a run whose loss turned non-finite at ``step`` says, solo or in a stack."""
    return (
        f"The loss became non-finite at step {step} (epoch {record.epochs_completed + 1}); "
        f"the checkpoint from epoch {record.epochs_completed} is kept. Try a smaller weight or learning rate."
    )


def new_record(config: RunConfig, corpus: Corpus, split: Split) -> RunRecord:
    """The record a new run starts with, solo or in a stack: its config, vocabulary, corpus and split."""
    return RunRecord(
        name=config.name,
        config=config,
        vocab=corpus.vocab,
        corpus_fingerprint=corpus.fingerprint,
        corpus_sources=corpus.sources,
        corpus_stats=vars(corpus.stats),
        prefix_width=corpus.stats.longest - 1,
        train_pairs=split.train.pairs,
        val_pairs=split.val.pairs,
        steps_per_epoch=len(split.train),
        versions=versions(),
    )


def stop_mid_epoch(record: RunRecord, directory: RunDirectory, totals: MetricTotals, save: Callable[[], None]) -> Iterator[Event]:
    """A run stopped inside an epoch, solo or in a stack: saved (``save``) with the epoch's running totals, which its resume goes on from."""
    record.status, record.partial_epoch = "stopped", PartialEpoch(**totals.state())
    save()
    yield CheckpointSaved(record.config.name, directory.path, record.epoch_progress)
    yield RunStopped(record.config.name, record.step, record.epoch_progress)


def close_epoch(
    record: RunRecord,
    directory: RunDirectory,
    epoch: int,
    metrics: dict[str, float],
    timing: dict[str, float],
    stop_requested: bool,
    save: Callable[[], None],
    total_steps: int,
    definitions: dict[str, str],
) -> Iterator[Event]:
    """Epoch ``epoch`` (from 0) of a run, solo or in a stack, is over: its metrics go in the record and the metrics file,
    the run is saved (``save``), and a stop asked for before its last epoch ends it there (``status`` ``stopped``)."""
    name = record.config.name
    record.epochs_completed, record.batch_in_epoch, record.partial_epoch, record.metrics = epoch + 1, 0, None, metrics
    directory.append_metrics({"kind": "epoch", "step": record.step, "epoch": epoch + 1, **metrics, **timing})
    if stop_requested and epoch + 1 < record.config.train.epochs:
        record.status = "stopped"
    save()
    yield EpochMetrics(name, epoch + 1, record.step, total_steps, metrics, definitions, collapsed(metrics))
    yield CheckpointSaved(name, directory.path, float(epoch + 1))
    if record.status == "stopped":
        yield RunStopped(name, record.step, record.epoch_progress)


class WallClock:
    """Wall time and throughput for the metric lines.

    ``wall_s``: seconds since training began (after the corpus was loaded and the head warmed
    up), carried on from the record when the run resumes (the time between its last line and
    the stop is not counted). ``pairs_per_s``: on a step line, the
    training pairs since the previous line over the time since it; on an epoch line, the epoch's
    training pairs over the epoch's time, validation and checkpoint included.
    """

    def __init__(self, offset: float = 0.0):
        self.offset, self.started = offset, time.perf_counter()
        self.last = self.epoch_started = self.started
        self.epoch_pairs = 0

    def start_epoch(self) -> None:
        self.epoch_started, self.epoch_pairs = time.perf_counter(), 0

    def line(self, pairs: int) -> dict[str, float]:
        now = time.perf_counter()
        rate, self.last = pairs / max(now - self.last, 1e-9), now
        self.epoch_pairs += pairs
        return {"wall_s": round(self.offset + now - self.started, 3), "pairs_per_s": round(rate, 1)}

    def epoch_line(self) -> dict[str, float]:
        now = time.perf_counter()
        self.last = now
        rate = self.epoch_pairs / max(now - self.epoch_started, 1e-9)
        return {"wall_s": round(self.offset + now - self.started, 3), "pairs_per_s": round(rate, 1)}


def forward(
    model: LanguageModel, objective: Objective, batch: Batch, totals: MetricTotals | None = None, fusion: Fusion | None = None
) -> torch.Tensor:
    """The batch's mean loss through the fused head (:mod:`engine.objective.head`), its metrics added to ``totals``."""
    if batch.last_only:
        features, target_index = model.features(batch.inputs, last_only=True, pads=batch.pads), batch.targets
    else:
        scored = batch.targets > 0
        features, target_index = model.features(batch.inputs, scored=scored), batch.targets[scored]
    output = model.output
    return head_loss_and_metrics(
        features, output.weight, output.bias, target_index, objective, model.config.head, totals, fusion=fusion
    )


@torch.no_grad()
def evaluate(
    model: LanguageModel,
    batches: DocumentBatches | PrefixBatches,
    objective: Objective,
    device: torch.device,
    fusion: Fusion | None = None,
) -> MetricTotals:
    """Metric totals over every pair of ``batches``, in order, with dropout off."""
    was_training = model.training
    model.eval()
    totals = MetricTotals()
    for batch in iterate(batches, seed=None):
        forward(model, objective, batch.to(device), totals, fusion)
    model.train(was_training)
    return totals


def _epoch_summary(training: MetricTotals, validation: MetricTotals) -> dict[str, float]:
    """An epoch line's metrics: the epoch's training batches and the validation split, under their keys (:mod:`engine.metric_table`)."""
    return {**line_fields(training.summary(), "training"), **line_fields(validation.summary(), "validation")}
