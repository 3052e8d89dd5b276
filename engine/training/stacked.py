"""A sweep as one job: runs that differ only in their objective train as one stacked model.

API (for the CLI and the controller)::

    groups = stack_groups(configs, memory_budget=default_memory_budget("auto"))   # list[list[RunConfig]]
    for group in groups:
        trainer = StackedTrainer.new(group, checkpoints)        # UserError if a name is taken or the group cannot stack
        for event in trainer.events():                          # engine.training.events, run_name = the member's
            ...
        trainer.stop("name")                                    # thread-safe; trainer.stop() stops every member

A stack trains its members exactly as :class:`engine.training.trainer.Trainer` trains each alone with the
same seed: the same split, batches, initial weights and dropout masks, one forward and one
backward per batch for all members (the total loss is the sum of the members' mean losses, so
each member's gradient is its solo gradient) and one Adam over the stacked parameters.
Each member writes its own ordinary run folder (``run.json``, ``metrics.jsonl``, safetensors
under the solo names, through :class:`engine.runs.checkpoint.RunDirectory`), so ``generate``, ``runs``,
the app and ``train --resume NAME`` treat it as a solo run; a stack is not resumed as a stack.

Fates are the members' own: a member whose loss turns non-finite ends ``diverged`` with its
last epoch's checkpoint, as a solo run does, and is cut out of the stack (its parameters, Adam
moments and totals) at the end of that live-metrics window; a member asked to stop is saved and
cut out; the others go on. A fault fails every member still training.

**Which runs stack** (:func:`stack_key`): equal corpus, model and train settings (epochs, batch
size, learning rate, seed, device, batching, logging…); name, preset label and objective may
differ. Objectives that share their terms are scored in one pass (:mod:`engine.objective.stacked`).

**Memory** (:func:`activation_bytes`): a member adds about :data:`VOCAB_TENSORS` float32
tensors of its training batch's ``positions × V`` (raw outputs, the loss's and metrics' views
of them, their gradients: counted for the ``mse + kl`` linear head, where about 10 are alive
at the peak of the backward pass), its LSTM activations and 4 float32 copies of its parameters
(weights, gradient, two Adam moments). Positions: the batch size with prefix batching, batch
size × (longest document − 1) with document batching, an upper bound (batches are bucketed by
length). Evaluation batches are :data:`~engine.training.trainer.EVAL_BATCH_FACTOR` times larger, so a
stack scores that many fewer members at a time there and needs no more. :func:`stack_groups`
cuts a stack into the fewest groups whose members' estimates fit the budget.

**Exactness.** Each member's forward is the solo model's own code on its own parameter slices
(:mod:`engine.lm.stacked_model`), so outputs and dropout masks are those of the solo run. Gradients
agree to float rounding, not bit for bit: the solo trainer's output layer is the fused head
(:mod:`engine.objective.head`), whose ``∂loss/∂z`` is computed in closed form chunk by chunk, while a
stack differentiates its members' ``(R, n, V)`` outputs with autograd. Other places where reduction
order can differ on another build or device: the loss and metric reductions over ``(R, n[, V])``
and Adam's element-wise kernels over ``(R, …)`` tensors. None of these lets one member's values
reach another's.

**The recurrent form.** On a CPU the recurrent work is compute-bound, so no stacked form beats R
solo kernels: the stack runs the solo kernel per member there, and shares everything else (batch
building, the one-hot targets, the loss and metrics over ``(R, n, V)`` in one pass per term, Adam's
per-tensor overhead, evaluation batches). On a launch-bound GPU it runs the block-diagonal form as
one wide kernel call, with the guards that keep a non-finite member's NaN out of the others.

The measurements behind these choices (peak memory, the agreement with solo runs, the recurrent
forms timed against each other, whole sweeps on a CPU and an H100) are in ``docs/design/stacking.md``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import platform
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from engine.config.models import RunConfig
from engine.errors import UserError
from engine.lm.batching import Batch, DocumentBatches, PrefixBatches, iterate
from engine.lm.corpus import Corpus, load_corpus
from engine.lm.model import LanguageModel, check_inputs_fit, parameter_count
from engine.lm.stacked_model import StackedModel, adam, load_member_adam, select_adam
from engine.metric_table import line_fields
from engine.objective.metrics import definitions_for
from engine.objective.stacked import StackedObjective, StackedTotals
from engine.runs import protocol
from engine.runs.checkpoint import RunDirectory, RunRecord
from engine.training.events import (
    FINAL_EVENTS,
    Event,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    StepMetrics,
)
from engine.training.trainer import (
    EVAL_BATCH_FACTOR,
    WallClock,
    _epoch_summary,
    close_epoch,
    divergence_message,
    epoch_seed,
    make_split,
    new_record,
    resolve_device,
    stop_mid_epoch,
)

VOCAB_TENSORS = 12
LSTM_TENSORS = 8
BLOCK_TENSORS = 12
DEFAULT_BUDGET_SHARE = 0.5
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
HEAP_THRESHOLD = 2**30


def stack_key(config: RunConfig) -> str:
    """What must be equal for runs to stack: the config without its name, preset label and objective."""
    return json.dumps(config.model_dump(exclude={"name", "preset", "objective"}), sort_keys=True)


def activation_bytes(config: RunConfig, corpus: Corpus) -> int:
    """Estimated memory one member adds to a stack (module docstring): its largest batch's tensors and its parameters' state."""
    vocab, longest = len(corpus.vocab), corpus.stats.longest
    model, train = config.model, config.train
    steps = max(longest - 1, 1)
    positions = train.batch_size if train.batching == "prefix" else train.batch_size * steps
    vocab_bytes = 4 * vocab * positions * VOCAB_TENSORS
    if model.arch == "transformer":  # per block: tensors of the residual width, the feed-forward's, T × T scores per head
        per_position = BLOCK_TENSORS * model.embedding_dim + 2 * model.hidden_size + 3 * model.heads * steps
        body_bytes = 4 * train.batch_size * steps * per_position * model.num_layers
    else:
        body_bytes = 4 * train.batch_size * steps * model.hidden_size * model.num_layers * LSTM_TENSORS
    return vocab_bytes + body_bytes + 4 * 4 * parameter_count(vocab, model)


def reuse_large_allocations() -> bool:
    """Let glibc serve allocations up to 1 GiB from its heap and keep freed ones for reuse; False where it is not glibc.

    glibc gives each allocation above its mmap threshold (at most 32 MiB) fresh pages from the
    kernel and returns them on free, so a tensor that size is page-faulted in anew at every
    batch. A stack's ``(R, n, V)`` tensors pass that size where a solo run's do not; what that
    costs, measured, is in ``docs/design/stacking.md``. It holds for the whole process.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(M_MMAP_THRESHOLD, HEAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, HEAP_THRESHOLD))


def default_memory_budget(device: str = "auto") -> int:
    """Half the free memory of the device training would run on (CUDA's free memory, else the host's MemAvailable)."""
    where = resolve_device(device)
    if where.type == "cuda":
        free, _ = torch.cuda.mem_get_info(where)
        return int(free * DEFAULT_BUDGET_SHARE)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(int(line.split()[1]) * 1024 * DEFAULT_BUDGET_SHARE)
    return 4 * 2**30


def stack_groups(
    configs: list[RunConfig], memory_budget: int | None = None, corpus: Corpus | None = None
) -> list[list[RunConfig]]:
    """The configs cut into stacks: runs with equal :func:`stack_key` together, in the order given.

    A stack whose members' :func:`activation_bytes` sum exceeds ``memory_budget`` (bytes; None:
    no limit) is cut into the fewest groups that fit, of sizes as even as possible; a run too
    large for the budget alone trains alone. ``corpus`` (the configs' corpus, if loaded) spares
    loading it for the estimate.
    """
    by_key: dict[str, list[RunConfig]] = {}
    for config in configs:
        by_key.setdefault(stack_key(config), []).append(config)
    corpora: dict[str, Corpus] = {}
    groups = []
    for members in by_key.values():
        capacity = len(members)
        if memory_budget is not None:
            corpus_key = members[0].corpus.model_dump_json()
            if corpus_key not in corpora:
                corpora[corpus_key] = corpus or load_corpus(members[0].corpus)
            capacity = max(1, min(capacity, memory_budget // activation_bytes(members[0], corpora[corpus_key])))
        count = math.ceil(len(members) / capacity)
        size, extra = divmod(len(members), count)
        start = 0
        for index in range(count):
            end = start + size + (1 if index < extra else 0)
            groups.append(members[start:end])
            start = end
    return groups


@dataclass
class _Member:
    """One run of the stack: its config, folder, record (set when training starts) and stop request."""

    config: RunConfig
    directory: RunDirectory
    record: RunRecord = field(init=False, repr=False)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.config.name


class StackedTrainer:
    """Trains runs that differ only in their objective as one stacked model; build with :meth:`new`, iterate :meth:`events`."""

    def __init__(self, configs: list[RunConfig], checkpoints: Path, corpus: Corpus | None):
        self.configs = configs
        self.checkpoints = Path(checkpoints)
        self._corpus = corpus
        self._members = [_Member(config, RunDirectory(self.checkpoints, config.name)) for config in configs]
        self._by_name = {member.name: member for member in self._members}
        self._active = list(self._members)  # the members still training, in stack order

    @classmethod
    def new(
        cls, configs: list[RunConfig], checkpoints: Path, corpus: Corpus | None = None, queued: bool = False
    ) -> StackedTrainer:
        """Fresh runs, one per config; they must stack (:func:`stack_key`) and their names be free and distinct.

        With ``queued``, their folders may hold the ``request.json`` of the sweep that queued them.
        """
        if not configs:
            raise UserError("A stack needs at least one run configuration.")
        names = [config.name for config in configs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise UserError(f"Run name {repeated[0]!r} appears twice in the stack; give each run its own name.")
        first = configs[0]
        for config in configs[1:]:
            if stack_key(config) != stack_key(first):
                raise UserError(
                    f"Runs {first.name!r} and {config.name!r} differ in {_first_difference(first, config)}; "
                    "only runs that differ in their objective can train as one stack."
                )
        trainer = cls(configs, checkpoints, corpus)
        for member in trainer._members:
            protocol.ensure_free(member.directory.path, member.name)
            if member.directory.exists() or (not queued and protocol.occupied(member.directory.path)):
                raise UserError(
                    f"A run named {member.name!r} already exists in {str(checkpoints)!r}; choose another name or --resume it."
                )
        return trainer

    @property
    def names(self) -> list[str]:
        return [member.name for member in self._members]

    def stop(self, name: str | None = None) -> None:
        """Ask member ``name`` (every member when None) to stop after the current batch (thread-safe)."""
        if name is None:
            for member in self._members:
                member.stop.set()
            return
        if name not in self._by_name:
            raise UserError(f"No run named {name!r} trains in this stack; its runs are: {', '.join(self.names)}.")
        self._by_name[name].stop.set()

    def events(self) -> Iterator[Event]:
        """Run training, yielding every member's events; each member gets exactly one final event.

        Each member holds its run's writer lock (:class:`engine.runs.protocol.Writer`: lock, heartbeat,
        stop file) from before its first save until its final event, as a solo trainer does.
        """
        writers: dict[str, protocol.Writer] = {}
        try:
            for member in self._members:
                writer = protocol.Writer(member.directory.path, member.name, lambda name=member.name: self.stop(name))
                writer.start()
                writers[member.name] = writer
        except (UserError, OSError) as error:
            self._release(writers)
            message = (
                str(error)
                if isinstance(error, UserError)
                else f"Cannot write the run folders in {str(self.checkpoints)!r} ({error.strerror})."
            )
            for member in self._members:
                yield RunFailed(member.name, message, user_error=True)
            return
        self._writers = writers
        try:
            for event in self._guarded():
                if isinstance(event, FINAL_EVENTS):  # free the member's folder before anyone hears it ended
                    self._release({event.run_name: writers.pop(event.run_name)})
                yield event
        finally:
            self._release(writers)

    def _release(self, writers: dict[str, protocol.Writer]) -> None:
        """Let go of these members' folders; a member that never saved leaves no folder behind."""
        for name, writer in writers.items():
            writer.close()
            directory = self._by_name[name].directory
            if not directory.exists():
                protocol.discard_unsaved(directory.path)

    def _guarded(self) -> Iterator[Event]:
        try:
            yield from self._run()
        except UserError as error:
            for member in self._active:
                yield RunFailed(member.name, str(error), user_error=True)
        except Exception as error:  # a fault in lm-explorer, not in the input: keep the details
            message, details = f"{type(error).__name__}: {error}", traceback.format_exc()
            for member in self._active:
                member.directory.mark("failed", message)
                yield RunFailed(member.name, message, user_error=False, details=details)

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> Iterator[Event]:
        first = self.configs[0]
        device = resolve_device(first.train.device)
        corpus = self._corpus or load_corpus(first.corpus)
        split = make_split(first, corpus)
        vocab_size = self._vocab_size = len(corpus.vocab)
        self._device = device
        check_inputs_fit(first.model, corpus.stats.longest - 1, f"Run {first.name!r}")
        if device.type == "cpu":
            reuse_large_allocations()
        torch.manual_seed(first.train.seed)
        shell = LanguageModel(vocab_size, first.model).to(device)
        self._model = StackedModel.replicate(shell, len(self._members))
        self._optimizer = adam(self._model.params, first.train.lr, first.train.adam_eps)
        self._shell_optimizer = adam(list(shell.parameters()), first.train.lr, first.train.adam_eps)
        self._objective = StackedObjective([config.objective for config in self.configs], first.model.head)
        steps_per_epoch = len(split.train)
        total_steps = steps_per_epoch * first.train.epochs
        definitions = definitions_for(first.model.head)
        for r, member in enumerate(self._members):
            member.record = new_record(member.config, corpus, split)
            self._save(r)
        for member in self._members:
            yield RunStarted(
                member.name,
                member.config,
                str(device),
                vocab_size,
                split.train.pairs,
                split.val.pairs,
                steps_per_epoch,
                total_steps,
                0,
                definitions,
            )

        step = 0
        self._clock = WallClock()
        for epoch in range(first.train.epochs):
            self._clock.start_epoch()
            seed = epoch_seed(first.train.seed, epoch)
            torch.manual_seed(seed)
            self._model.train()
            self._epoch_totals = self._totals()
            self._window, self._window_losses = self._totals(), []
            for batch_in_epoch, batch in enumerate(iterate(split.train, seed), start=1):
                yield from self._stop_mid_epoch()
                if not self._active:
                    return
                self._window_losses.append(self._step(batch.to(device)))
                step += 1
                for member in self._active:
                    member.record.step, member.record.batch_in_epoch = step, batch_in_epoch
                if step % first.train.log_every == 0 or batch_in_epoch == steps_per_epoch:
                    yield from self._close_window(step, epoch + batch_in_epoch / steps_per_epoch, total_steps)
                    if not self._active:
                        return
            yield from self._end_epoch(epoch, split.val, total_steps, definitions)
            if not self._active:
                return

        while self._active:
            member = self._active.pop(0)
            member.record.status = "finished"
            member.directory.write_record(member.record)
            yield RunFinished(member.name, member.record.metrics)

    def _step(self, batch: Batch) -> torch.Tensor:
        """One forward, backward and Adam step for every member; each member's mean loss ``(R,)``, NaN for a member whose parameters went non-finite."""
        raw, target_index, finite = self._model(batch)
        losses, sums, guesses = self._objective(raw, target_index)
        means = losses.mean(-1)
        self._optimizer.zero_grad(set_to_none=True)
        means.sum().backward()
        self._optimizer.step()
        self._window.add(sums, guesses)
        return torch.where(finite, means.detach(), torch.nan)

    def _close_window(self, step: int, epoch: float, total_steps: int) -> Iterator[Event]:
        """Diverged members leave; the others log the window and add it to their epoch."""
        diverged = self._first_non_finite(step)
        for r, bad_step in diverged.items():
            yield self._diverge(self._active[r], bad_step)
        if diverged:
            self._keep([r for r in range(len(self._active)) if r not in diverged])
        timing = self._clock.line(self._window.count)  # the members share every batch, so its time and pairs
        for r, member in enumerate(self._active):
            live = line_fields(self._window.member(r).summary(), "training")
            member.directory.append_metrics({"kind": "step", "step": step, "epoch": epoch, **live, **timing})
            self._writers[member.name].progress(step, total_steps, str(self._device))
            yield StepMetrics(member.name, step, total_steps, epoch, live)
        self._epoch_totals.merge(self._window)
        self._window, self._window_losses = self._totals(), []

    def _stop_mid_epoch(self) -> Iterator[Event]:
        """Members asked to stop are saved with the epoch's running totals and leave the stack, as a solo stop mid-epoch."""
        stopping = [r for r, member in enumerate(self._active) if member.stop.is_set()]
        if not stopping:
            return
        diverged = self._first_non_finite(self._active[0].record.step)
        for r in stopping:
            member = self._active[r]
            if r in diverged:
                yield self._diverge(member, diverged[r])
                continue
            totals = self._epoch_totals.member(r)
            totals.merge(self._window.member(r))
            yield from stop_mid_epoch(member.record, member.directory, totals, partial(self._save, r))
        self._keep([r for r in range(len(self._active)) if r not in stopping])

    def _end_epoch(
        self, epoch: int, val: DocumentBatches | PrefixBatches, total_steps: int, definitions: dict[str, str]
    ) -> Iterator[Event]:
        validation = self._evaluate(val)
        timing = self._clock.epoch_line()
        stopped = []
        for r, member in enumerate(self._active):
            metrics = _epoch_summary(self._epoch_totals.member(r), validation.member(r))
            yield from close_epoch(
                member.record,
                member.directory,
                epoch,
                metrics,
                timing,
                member.stop.is_set(),
                partial(self._save, r),
                total_steps,
                definitions,
            )
            if member.record.status == "stopped":
                stopped.append(r)
        if stopped:
            self._keep([r for r in range(len(self._active)) if r not in stopped])

    @torch.no_grad()
    def _evaluate(self, batches: DocumentBatches | PrefixBatches) -> StackedTotals:
        """Every member's metric totals over the validation batches, in order, with dropout off.

        Evaluation batches hold :data:`EVAL_BATCH_FACTOR` times a training batch's sequences, so
        members are scored that many fewer at a time: evaluation's ``(members, n, V)`` tensors stay
        no larger than a training step's.
        """
        self._model.train(False)
        totals, count = self._totals(), len(self._active)
        size = max(1, count // EVAL_BATCH_FACTOR)
        chunks = [range(start, min(start + size, count)) for start in range(0, count, size)]
        objectives = [self._objective.select(list(chunk)) for chunk in chunks]
        for batch in iterate(batches, seed=None):
            batch = batch.to(self._device)
            scored = []
            for chunk, objective in zip(chunks, objectives, strict=True):
                raw, target_index, _ = self._model(batch, chunk)
                scored.append(objective(raw, target_index)[1:])
                del raw
            totals.add(torch.cat([sums for sums, _ in scored]), torch.cat([guesses for _, guesses in scored]))
        self._model.train(True)
        return totals

    # -- members ----------------------------------------------------------------------------------

    def _totals(self) -> StackedTotals:
        return StackedTotals(len(self._active), self._vocab_size, self._device)

    def _first_non_finite(self, last_step: int) -> dict[int, int]:
        """Per member whose loss became non-finite in this window, the step it first did; else, when the
        member's Adam moments are no longer finite (``torch.isfinite``), the window's last step (as the solo trainer)."""
        if not self._window_losses:
            return {}
        finite = torch.isfinite(torch.stack(self._window_losses)).cpu()
        first_step = last_step - finite.shape[0] + 1
        diverged = {r: first_step + int((~finite[:, r]).nonzero()[0]) for r in range(finite.shape[1]) if not finite[:, r].all()}
        moments = [
            torch.isfinite(value).flatten(1).all(1)
            for state in self._optimizer.state.values()
            for value in state.values()
            if value.dim()
        ]
        if moments:
            settled = torch.stack(moments).all(0).tolist()
            diverged.update({r: last_step for r, ok in enumerate(settled) if not ok and r not in diverged})
        return diverged

    def _diverge(self, member: _Member, step: int) -> RunDiverged:
        message = divergence_message(member.record, step)
        member.directory.mark("diverged", message)
        return RunDiverged(member.name, step, message)

    def _keep(self, keep: list[int]) -> None:
        """Cut the stack down to the members ``keep``: parameters, Adam moments, objectives, totals, window."""
        if len(keep) == len(self._active):
            return
        self._active = [self._active[r] for r in keep]
        if not keep:
            return
        model = self._model.select(keep)
        self._optimizer = select_adam(self._optimizer, model, keep)
        self._model = model
        self._objective = self._objective.select(keep)
        self._epoch_totals, self._window = self._epoch_totals.select(keep), self._window.select(keep)
        self._window_losses = [losses[torch.tensor(keep, device=losses.device)] for losses in self._window_losses]

    def _save(self, r: int) -> None:
        """Member ``r``'s folder, as :meth:`RunDirectory.save` writes a solo run's."""
        member = self._active[r]
        shell = self._model.load_member(r)
        member.directory.save(member.record, shell, load_member_adam(self._shell_optimizer, self._optimizer, r))


def _first_difference(first: RunConfig, other: RunConfig) -> str:
    """The first dotted setting (besides name, preset and objective) where two configs differ."""
    a, b = first.model_dump(), other.model_dump()
    for section in ("corpus", "model", "train"):
        for key, value in a[section].items():
            if b[section][key] != value:
                return f"{section}.{key} ({value!r} against {b[section][key]!r})"
    return "their settings"
