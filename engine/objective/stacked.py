"""Each stacked member's loss and metric sums, computed on its own outputs by the solo definitions.

:meth:`StackedObjective.__call__` is the one place where a stack turns outputs ``(R, n, V)`` into
per-member losses and metrics (where a fused output head would plug in). Members are grouped by
the terms they use, ``(loss, loss parameter, regularizer)``; each group is scored in one pass
over its rows with the functions of :mod:`engine.objective.total` and :mod:`engine.objective.metrics`, which
work row-wise on any leading shape:

    ``loss_r = base(y_r, t_r) + w_r · penalty(y_r, t_r)``

with ``w_r`` the member's weight (a float32 column, the value the solo run's scalar becomes).
A member whose weight (label smoothing: ε) is 0 is grouped as regularizer ``none``, as
:class:`~engine.objective.total.Objective` skips the penalty then. Targets are the shared one-hot rows,
or each member's own rows smoothed by its ε for label smoothing.

:class:`StackedTotals` keeps the sums :class:`~engine.objective.metrics.MetricTotals` keeps, one row per
member, and hands a member's as a ``MetricTotals`` for its summaries.
"""

from __future__ import annotations

import torch

from engine.objective.chunk import Chunk, Targets
from engine.objective.metrics import MetricTotals, Outputs
from engine.objective.terms import BASE_LOSSES, REGULARIZERS, ObjectiveSpec
from engine.objective.total import Objective


class StackedObjective:
    """The objectives of a stack's members, in stack order."""

    def __init__(self, configs: list[ObjectiveSpec], head: str):
        self.configs, self.head = configs, head
        groups: dict[tuple[str, float | None, str], list[int]] = {}  # (loss, loss parameter, regularizer) → members
        for r, config in enumerate(configs):
            regularizer = config.regularizer if config.strength != 0 else "none"
            groups.setdefault((config.loss, config.loss_param, regularizer), []).append(r)
        self.groups = list(groups.items())
        order = [r for _, members in self.groups for r in members]
        self._restore = None if order == list(range(len(configs))) else [order.index(r) for r in range(len(configs))]

    def select(self, keep: list[int]) -> StackedObjective:
        return StackedObjective([self.configs[r] for r in keep], self.head)

    def __call__(self, raw: torch.Tensor, target_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-prediction losses ``(R, n)``, metric sums ``(R, 5)`` (float64) and argmax guesses ``(R, n)``."""
        vocab = raw.shape[-1]
        pieces = []
        for (loss, param, regularizer), members in self.groups:
            rows = raw if len(members) == len(self.configs) else raw[torch.tensor(members, device=raw.device)]
            outputs = Outputs(rows, self.head)
            base, terms = BASE_LOSSES[loss], REGULARIZERS[regularizer]
            if terms.smooths_targets:  # each member its own ε
                losses = torch.stack(
                    [
                        base.value(
                            Chunk(Outputs(rows[i], self.head), Objective(self.configs[r]).targets(target_index, vocab)),
                            param=param,
                        )
                        for i, r in enumerate(members)
                    ]
                )
            else:
                chunk = Chunk(outputs, Targets(target_index, vocab))
                losses = base.value(chunk, param=param)
                if terms.penalty is not None:
                    weights = torch.tensor([self.configs[r].weight for r in members], dtype=raw.dtype, device=raw.device)
                    losses = losses + weights.unsqueeze(-1) * terms.penalty.value(chunk)
            pieces.append((losses, *metric_sums(outputs, target_index, losses)))
        losses, sums, guesses = (torch.cat(part) if len(pieces) > 1 else part[0] for part in zip(*pieces, strict=True))
        if self._restore is not None:
            losses, sums, guesses = losses[self._restore], sums[self._restore], guesses[self._restore]
        return losses, sums, guesses


@torch.no_grad()
def metric_sums(outputs: Outputs, target_index: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member, the five sums :meth:`MetricTotals.add` takes (loss, entropy, KL, correct, CE), and the argmax guesses."""
    words = target_index.expand(losses.shape)
    guesses = outputs.raw.argmax(-1)
    sums = torch.stack(
        [
            losses.detach().sum(-1),
            outputs.entropy().sum(-1),
            outputs.kl_to_words(words).sum(-1),
            (guesses == words).sum(-1).to(losses.dtype),
            outputs.cross_entropy_to_words(words).sum(-1),
        ],
        dim=-1,
    ).double()
    return sums, guesses


class StackedTotals:
    """:class:`MetricTotals` for R members at once: sums ``(R, 5)``, the words each member has predicted ``(R, V)``."""

    def __init__(self, members: int, vocab_size: int, device: torch.device):
        self.count = 0
        self.sums = torch.zeros(members, 5, dtype=torch.float64, device=device)
        self.predicted = torch.zeros(members, vocab_size, dtype=torch.bool, device=device)

    @torch.no_grad()
    def add(self, sums: torch.Tensor, guesses: torch.Tensor) -> None:
        self.sums += sums
        self.predicted.scatter_(1, guesses, True)
        self.count += guesses.shape[-1]

    def merge(self, other: StackedTotals) -> None:
        self.sums += other.sums
        self.predicted |= other.predicted
        self.count += other.count

    def select(self, keep: list[int]) -> StackedTotals:
        index = torch.tensor(keep, device=self.sums.device)
        selected = StackedTotals(0, 0, self.sums.device)
        selected.count, selected.sums, selected.predicted = self.count, self.sums[index], self.predicted[index]
        return selected

    def member(self, r: int) -> MetricTotals:
        """Member ``r``'s totals as the solo trainer keeps them."""
        if self.count == 0:
            return MetricTotals()
        state = {"count": self.count, "sums": self.sums[r].tolist(), "predicted": self.predicted[r].nonzero().flatten().tolist()}
        return MetricTotals.from_state(state, self.predicted.shape[1], self.sums.device)
