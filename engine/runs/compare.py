"""Whether two seed groups differ: per validation metric at their last common epoch, the difference of means,
its 95 % Welch interval (:func:`engine.runs.welch.welch_difference`), n per side, and the plain sentence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.metric_table import number, plus_minus
from engine.runs.groups import GroupEpochs, M, SeedGroup, read_group_epochs
from engine.runs.welch import MIN_SEEDS, Difference, welch_difference

COMPARED = ("val_loss", "entropy", "kl", "accuracy", "perplexity")
"""The validation metrics of an epoch line that a comparison states."""
OWN_OBJECTIVE = "val_loss"
HEAD_DEFINED = ("entropy", "kl")
"""Defined by the head (the study's clipped outputs for a linear head, softmax probabilities otherwise): comparable only between
groups with the same head."""
"""Each run's own objective on validation: comparable only between groups trained under the same objective."""


@dataclass(frozen=True)
class MetricComparison:
    """One metric of two groups at one epoch."""

    metric: str
    epoch: int
    difference: Difference

    def sentence(self, label_a: str, label_b: str) -> str:
        """``val_loss at epoch 5: kl 10 is lower than control by 0.12 (95 % CI …, n = 3 + 3).`` or why it cannot say."""
        d = self.difference
        n = f"n = {d.n_a} + {d.n_b}"
        where = f"{self.metric} at epoch {self.epoch}"
        if not d.comparable:
            return f"{where}: {label_a} and {label_b} cannot be compared with {n}; each side needs {MIN_SEEDS} finite values or more, run more seeds."
        interval = f"95 % CI {number(d.low)} to {number(d.high)}, Welch df {d.df:.1f}"
        if d.distinguishable:
            direction = "lower" if d.difference < 0 else "higher"
            return f"{where}: {label_a} is {direction} than {label_b} by {number(abs(d.difference))} ({interval}, {n})."
        return (
            f"{where}: {label_a} and {label_b} are not distinguishable with {n} "
            f"(difference {number(d.difference)}, {interval}); run more seeds."
        )

    def cells(self) -> list[str]:
        """The row of :data:`TABLE_HEADERS`."""
        d = self.difference
        interval = f"{number(d.low)} to {number(d.high)}" if d.comparable else "–"
        verdict = "distinguishable" if d.distinguishable else ("not distinguishable" if d.comparable else "too few seeds")
        return [
            self.metric,
            str(self.epoch),
            plus_minus(d.mean_a, d.sd_a),
            plus_minus(d.mean_b, d.sd_b),
            number(d.difference),
            interval,
            f"{d.df:.1f}" if d.comparable else "–",
            f"{d.n_a} + {d.n_b}",
            verdict,
        ]


TABLE_HEADERS = ["metric", "epoch", "A mean ± sd", "B mean ± sd", "A − B", "95 % CI", "df", "n", "verdict"]


@dataclass(frozen=True)
class GroupComparison:
    """Two groups compared on :data:`COMPARED` at their last common epoch (``epoch`` None: they share none)."""

    label_a: str
    label_b: str
    epoch: int | None
    rows: list[MetricComparison]
    objectives_differ: bool = False
    heads_differ: bool = False

    def sentences(self) -> list[str]:
        if self.epoch is None:
            return [f"{self.label_a} and {self.label_b} have no epoch in common yet; compare them once both finished one."]
        note = [f"{OWN_OBJECTIVE} is left out: each group's is its own objective, and theirs differ; perplexity compares them."]
        note = note if self.objectives_differ else []
        if self.heads_differ:
            note.append(
                f"{' and '.join(HEAD_DEFINED)} are left out: the groups' heads differ, and so do those metrics' definitions."
            )
        return [row.sentence(self.label_a, self.label_b) for row in self.rows] + note


def compare_groups(
    label_a: str,
    a: GroupEpochs,
    label_b: str,
    b: GroupEpochs,
    objectives_differ: bool,
    metrics: tuple[str, ...] = COMPARED,
    heads_differ: bool = False,
) -> GroupComparison:
    """Group ``a`` against ``b``: each metric's :class:`~engine.runs.welch.Difference` at the last epoch both share.

    Where the groups were trained under different objectives, :data:`OWN_OBJECTIVE` is left out; with different heads,
    :data:`HEAD_DEFINED`.
    """
    common = sorted(set(a.common_epochs) & set(b.common_epochs))
    if not common:
        return GroupComparison(label_a, label_b, None, [], objectives_differ, heads_differ)
    epoch = common[-1]
    left_out = ({OWN_OBJECTIVE} if objectives_differ else set()) | (set(HEAD_DEFINED) if heads_differ else set())
    shown = [metric for metric in metrics if metric not in left_out]
    rows = [MetricComparison(metric, epoch, welch_difference(a.at(metric, epoch), b.at(metric, epoch))) for metric in shown]
    return GroupComparison(label_a, label_b, epoch, rows, objectives_differ, heads_differ)


def compare_seed_groups(checkpoints: Path, a: SeedGroup[M], b: SeedGroup[M]) -> GroupComparison:
    """:func:`compare_groups` for two seed groups of run folders under ``checkpoints``."""
    configs = [group.members[0].config for group in (a, b)]
    objectives = [config.objective if config else None for config in configs]
    heads = [config.model.head if config else None for config in configs]
    return compare_groups(
        a.label,
        read_group_epochs(checkpoints, a.names),
        b.label,
        read_group_epochs(checkpoints, b.names),
        objectives[0] != objectives[1],
        heads_differ=heads[0] != heads[1],
    )
