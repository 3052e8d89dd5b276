"""Continue seed texts word by word from a trained run: greedy, or top-k sampling as the study did.

Each step scores the whole sequence so far (pre-padded to the run's width for prefix-trained
runs, as the study's generator did; a transformer reads at most its ``context`` last words) and
appends one word. Padding and ``<unk>`` are never emitted.

The next-word distribution follows the head: ``p = softmax(z / T)`` for a softmax head; for a
linear head the raw outputs clipped at 0, ``w_j = max(z_j, 0)^(1/T)``, normalized — the weights
the study's own generator sampled the top 5 words by. If every candidate's weight is 0 the
candidates are equally likely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.config.models import MAX_SEED
from engine.errors import UserError
from engine.lm.corpus import PAD, UNK, clean
from engine.objective.metrics import Outputs, definitions_for
from engine.runs.checkpoint import LoadedRun

TOP_ALTERNATIVES = 3
MAX_WORDS = 1000
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0  # outside, z / T or z^(1/T) overflows float32


@dataclass(frozen=True)
class Alternative:
    word: str
    probability: float


@dataclass(frozen=True)
class GenerationStep:
    """One emitted word, the entropy of the distribution it came from, and that distribution's top 3."""

    word: str
    probability: float
    entropy: float
    alternatives: list[Alternative]


@dataclass(frozen=True)
class Continuation:
    seed_text: str
    run_name: str
    strategy: str
    unknown_words: list[str]
    steps: list[GenerationStep] = field(default_factory=list)
    entropy_definition: str = "softmax"

    @property
    def words(self) -> list[str]:
        return [step.word for step in self.steps]

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class Strategy:
    """``top_k`` None is greedy (argmax); else sample among the ``top_k`` best with ``temperature``, seeded."""

    top_k: int | None = None
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise UserError(f"--top-k {self.top_k} is not allowed; give a whole number ≥ 1, or leave it out for greedy.")
        if not MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE:
            raise UserError(
                f"--temperature {self.temperature:g} is not allowed; give a number from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}."
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed {self.seed} is not allowed; give a whole number from 0 to {MAX_SEED}.")

    @property
    def name(self) -> str:
        return "greedy" if self.top_k is None else f"top-{self.top_k} sampling (T={self.temperature:g}, seed {self.seed})"


GREEDY = Strategy()


def seed_tokens(run: LoadedRun, seed_text: str) -> tuple[list[int], list[str]]:
    """The seed's token ids as the run sees them, and the seed words its vocabulary lacks.

    Unknown words map to ``<unk>`` when the vocabulary has it, and are left out of the input
    otherwise; either way they are reported.
    """
    index = {word: i for i, word in enumerate(run.record.vocab)}
    unk = index.get(UNK)
    tokens, unknown = [], []
    for word in clean(seed_text):
        if word in index and word not in (PAD, UNK):
            tokens.append(index[word])
        else:
            unknown.append(word)
            if unk is not None:
                tokens.append(unk)
    if not any(token != unk for token in tokens):
        raise UserError(f"Seed text {seed_text!r} has no word that run {run.name!r} knows; use words from its corpus.")
    return tokens, unknown


@torch.no_grad()
def generate(run: LoadedRun, seed_text: str, words: int = 10, strategy: Strategy = GREEDY) -> Continuation:
    """Continue ``seed_text`` by ``words`` words with ``strategy``."""
    if not 1 <= words <= MAX_WORDS:
        raise UserError(f"--words {words} is not allowed; give a whole number from 1 to {MAX_WORDS}.")
    tokens, unknown = seed_tokens(run, seed_text)
    vocab, head = run.record.vocab, run.record.config.model.head
    banned = [i for i, word in enumerate(vocab) if word in (PAD, UNK)]
    generator = torch.Generator().manual_seed(strategy.seed)
    device = next(run.model.parameters()).device
    steps = []
    for _ in range(words):
        raw = run.model(_model_input(run, tokens).to(device), last_only=True)[0].float().cpu()
        entropy = Outputs(raw.unsqueeze(0), head).entropy().item()
        raw[banned] = float("-inf") if head == "softmax" else float("nan")
        distribution = _distribution(raw, head, 1.0)
        choice = _choose(raw, head, strategy, generator)
        top = torch.topk(distribution, TOP_ALTERNATIVES)
        steps.append(
            GenerationStep(
                word=vocab[choice],
                probability=float(distribution[choice]),
                entropy=entropy,
                alternatives=[
                    Alternative(vocab[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
                ],
            )
        )
        tokens.append(choice)
    return Continuation(seed_text, run.name, strategy.name, unknown, steps, definitions_for(head)["entropy"])


def _model_input(run: LoadedRun, tokens: list[int]) -> torch.Tensor:
    """The sequence as the run was trained to read it: pre-padded to its width for prefix runs, and no longer
    than a transformer's positions (its last ``context`` words)."""
    model = run.record.config.model
    if model.arch == "transformer":
        tokens = tokens[-model.context :]
    if run.record.config.train.batching == "prefix":
        width = run.record.prefix_width
        kept = tokens[-width:]
        return torch.tensor([[0] * (width - len(kept)) + kept])
    return torch.tensor([tokens])


def _distribution(raw: torch.Tensor, head: str, temperature: float) -> torch.Tensor:
    """Next-word probabilities; banned words arrive as −inf (softmax head) or NaN (linear head)."""
    if head == "softmax":
        return torch.softmax(raw / temperature, dim=-1)
    weights = raw.nan_to_num(nan=0.0).clamp(min=0.0).pow(1.0 / temperature)
    allowed = ~raw.isnan()
    total = weights.sum()
    if total <= 0:
        return allowed.float() / allowed.sum()
    return weights / total


def _choose(raw: torch.Tensor, head: str, strategy: Strategy, generator: torch.Generator) -> int:
    scores = raw.nan_to_num(nan=float("-inf"))
    if strategy.top_k is None:
        return int(scores.argmax())
    candidates = torch.topk(scores, min(strategy.top_k, int(torch.isfinite(scores).sum()))).indices
    weights = _distribution(raw[candidates], head, strategy.temperature)
    return int(candidates[torch.multinomial(weights, 1, generator=generator)])
