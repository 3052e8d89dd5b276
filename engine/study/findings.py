"""What the study missed, measured on trained runs: the KL it optimized, the collapse, the decoders.

Each function takes a saved run (:class:`engine.runs.checkpoint.LoadedRun`) and the corpus it trained
on, and returns plain numbers for the report.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.generate import GREEDY, Strategy, generate
from engine.lm.batching import Batch, iterate
from engine.lm.corpus import Corpus
from engine.objective.metrics import EPSILON, clip, study_kl
from engine.runs.checkpoint import LoadedRun
from engine.training.trainer import make_split


def kl_decomposed(prediction: torch.Tensor, target_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's KL against one-hot rows, split into a clipped cross-entropy and the rest.

    With ``clip(t_k) = 1`` at the next word ``k`` and ``clip(t_j) = ε`` elsewhere,

    ``KL = Σ_j clip(t_j) log(clip(t_j)/clip(y_j))
         = −log clip(y_k) + Σ_(j≠k) ε (log ε − log clip(y_j))
         = −log clip(y_k) + (V−1) ε log ε − ε Σ_(j≠k) log clip(y_j)``.

    Returns ``(−log clip(y_k), (V−1) ε log ε − ε Σ_(j≠k) log clip(y_j))`` per row. Since
    ``ε ≤ clip(y_j) ≤ 1``, the rest lies in ``[(V−1) ε log ε, 0]``: at most ``(V−1) · 1.6e-6`` in size.
    """
    log_clipped = clip(prediction).log()
    at_target = log_clipped.gather(-1, target_index.unsqueeze(-1)).squeeze(-1)
    others = log_clipped.sum(-1) - at_target
    vocab = prediction.shape[-1]
    return -at_target, (vocab - 1) * EPSILON * math.log(EPSILON) - EPSILON * others


@dataclass(frozen=True)
class KLCheck:
    """The decomposition measured on one validation batch of a linear-head run (float64)."""

    run: str
    rows: int
    vocab: int
    kl: float  # mean study KL, from full one-hot rows
    clipped_ce: float  # mean −log clip(y_k)
    rest: float  # mean of the small term
    rest_min: float
    rest_max: float
    bound: float  # (V−1) ε log ε, the most negative the rest can be
    identity_error: float  # max |KL − (clipped CE + rest)| over the rows


def kl_check(run: LoadedRun, corpus: Corpus) -> KLCheck:
    """Compare the study's KL with ``−log clip(y_k)`` plus the small term on a validation batch."""
    batch = next(iterate(make_split(run.record.config, corpus).val, seed=None))
    raw, target_index = _validation_outputs(run, batch)
    raw = raw.double()
    full = study_kl(F.one_hot(target_index, raw.shape[-1]).double(), raw)
    clipped_ce, rest = kl_decomposed(raw, target_index)
    vocab = raw.shape[-1]
    return KLCheck(
        run.name,
        len(target_index),
        vocab,
        full.mean().item(),
        clipped_ce.mean().item(),
        rest.mean().item(),
        rest.min().item(),
        rest.max().item(),
        (vocab - 1) * EPSILON * math.log(EPSILON),
        (full - clipped_ce - rest).abs().max().item(),
    )


@dataclass(frozen=True)
class Predictions:
    """The argmax word of every validation prediction of a run, counted."""

    counts: Counter[str]
    total: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` most predicted words with their share of the predictions."""
        return [(word, count / self.total) for word, count in self.counts.most_common(n)]


@torch.no_grad()
def validation_predictions(run: LoadedRun, corpus: Corpus) -> Predictions:
    """Count which word the run's argmax names for every validation pair (dropout off)."""
    vocab = run.record.vocab
    counts: Counter[str] = Counter()
    total = correct = 0
    for batch in iterate(make_split(run.record.config, corpus).val, seed=None):
        raw, target_index = _validation_outputs(run, batch)
        guesses = raw.argmax(-1)
        counts.update(vocab[i] for i in guesses.tolist())
        total += len(target_index)
        correct += int((guesses == target_index).sum())
    return Predictions(counts, total, correct)


@torch.no_grad()
def _validation_outputs(run: LoadedRun, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw outputs ``z`` (n, V) at the batch's scored positions and their next words."""
    run.model.eval()
    batch = batch.to(next(run.model.parameters()).device)
    if batch.last_only:
        raw, target_index = run.model(batch.inputs, last_only=True), batch.targets
    else:
        scored = batch.targets > 0
        raw, target_index = run.model(batch.inputs, scored=scored), batch.targets[scored]
    return raw.float().cpu(), target_index.cpu()


@dataclass(frozen=True)
class Continuations:
    """A run's continuations of the seed texts, greedy and with the study's top-k sampler."""

    greedy: dict[str, str]
    sampled: dict[str, str]

    @staticmethod
    def distinct(texts: dict[str, str]) -> int:
        """How many different words the continuations use (a seed's notes in brackets left out)."""
        return len({word for text in texts.values() if not text.startswith("(") for word in text.rpartition("] ")[2].split()})


def continuations(run: LoadedRun, seed_texts: tuple[str, ...], words: int, top_k: int, sample_seed: int = 0) -> Continuations:
    """Greedy and top-``top_k`` continuations; a seed the run cannot read gets its reason as text."""
    from engine.errors import UserError

    def one(seed: str, strategy: Strategy) -> str:
        try:
            continuation = generate(run, seed, words, strategy)
        except UserError as error:
            return f"({error})"
        unknown = f"[unknown: {', '.join(continuation.unknown_words)}] " if continuation.unknown_words else ""
        return unknown + continuation.text

    sampler = Strategy(top_k=top_k, seed=sample_seed)
    return Continuations({seed: one(seed, GREEDY) for seed in seed_texts}, {seed: one(seed, sampler) for seed in seed_texts})
