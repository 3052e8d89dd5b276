"""The baseline the engine's trainer is measured against: a minimal plain-PyTorch training loop.

Same model (:class:`engine.lm.model.LanguageModel`, same seed), same batches in the same order
(:mod:`engine.lm.batching` through :func:`engine.training.trainer.make_split`, per-epoch seeds from
:func:`engine.training.trainer.epoch_seed`), same objective and Adam settings; no metrics, events,
validation or checkpoints. Its loss is the plain PyTorch one: the model's whole (positions ×
vocabulary) outputs, the objective's value formulas (:meth:`engine.objective.total.Objective.losses`)
and autograd, so it shares none of the engine's head, metrics or bookkeeping. Each epoch is timed from its first batch to its last optimizer step,
with a device synchronization at the end, leaving out the pauses in which a run it alternates
with goes on (:func:`bench.timing.interleave`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from bench.timing import Repetition, synchronize
from engine.config.models import RunConfig
from engine.lm.batching import iterate
from engine.lm.corpus import Corpus
from engine.lm.model import LanguageModel
from engine.objective.metrics import Outputs
from engine.objective.total import Objective
from engine.training.trainer import epoch_seed, make_split, resolve_device


class PlainRun:
    """Train ``config.train.epochs`` epochs (or the first ``max_steps`` batches of one); iterating advances it
    ``train.log_every`` batches at a time. ``reps`` fills with one :class:`Repetition` per epoch."""

    def __init__(self, config: RunConfig, corpus: Corpus, max_steps: int | None = None):
        self.config, self.corpus, self.max_steps = config, corpus, max_steps
        self.reps: list[Repetition] = []

    def __iter__(self) -> Iterator[None]:
        config, device = self.config, resolve_device(self.config.train.device)
        split = make_split(config, self.corpus)
        vocab_size = len(self.corpus.vocab)
        torch.manual_seed(config.train.seed)
        model = LanguageModel(vocab_size, config.model).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, eps=config.train.adam_eps)
        objective = Objective(config.objective)
        for epoch in range(1 if self.max_steps else config.train.epochs):
            torch.manual_seed(epoch_seed(config.train.seed, epoch))
            model.train()
            pairs, elapsed, resumed = 0, 0.0, time.perf_counter()
            for step, batch in enumerate(iterate(split.train, epoch_seed(config.train.seed, epoch))):
                if step == self.max_steps:
                    break
                if step and step % config.train.log_every == 0:
                    synchronize(device)
                    elapsed += time.perf_counter() - resumed
                    yield
                    resumed = time.perf_counter()
                batch = batch.to(device)
                if batch.last_only:
                    raw, target_index = model(batch.inputs, last_only=True), batch.targets
                else:
                    scored = batch.targets > 0
                    raw, target_index = model(batch.inputs, scored=scored), batch.targets[scored]
                loss = objective.losses(Outputs(raw, config.model.head), target_index).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                pairs += target_index.numel()
            synchronize(device)
            elapsed += time.perf_counter() - resumed
            self.reps.append(Repetition(pairs, elapsed, elapsed))
            yield
