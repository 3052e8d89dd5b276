"""Seed groups: runs whose configurations differ only in ``train.seed``, with their epoch lines side by side.

The one grouping the app (group lines and rows), ``lm-explorer compare`` and ``reproduce`` use.
Two runs are in the same group when their configs agree on everything that changes what is
learned: the name, the seed, and what says only where, how long or how often it ran
(:data:`NOT_DEFINING`) are left out of the comparison.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from engine.config.models import RunConfig
from engine.errors import UserError
from engine.runs.view import RunView
from engine.runs.welch import mean_sd

if TYPE_CHECKING:  # numpy is imported where it is used: the app imports this module before its first frame
    import numpy as np
    import numpy.typing as npt

NOT_DEFINING: dict[str, Any] = {
    "name": True,
    "train": {"seed", "device", "compile", "epochs", "log_every"},  # epochs: groups are compared at a common epoch
}
SEED_SUFFIX = re.compile(r"-s\d+$")
BandKind = Literal["minmax", "sd"]


def group_key(config: RunConfig) -> str:
    """What a seed group's members share: the config without its name, seed and :data:`NOT_DEFINING` settings, as JSON."""
    return json.dumps(config.model_dump(mode="json", exclude=NOT_DEFINING), sort_keys=True)


class Member(Protocol):
    """What grouping needs of a run: its name and config (a :class:`~engine.runs.view.RunView`, the app's run state)."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> RunConfig | None: ...


M = TypeVar("M", bound=Member)


@dataclass(frozen=True)
class SeedGroup(Generic[M]):
    """Runs that differ only in their seed, ordered by seed.

    ``key`` is the group's identity, the same however its members come and go (a digest of what they share,
    :func:`group_key`); ``label`` names it for people: the members' name without ``-s<seed>``, distinct among
    the groups :func:`seed_groups` returns.
    """

    key: str
    label: str
    members: tuple[M, ...]

    @property
    def names(self) -> list[str]:
        return [view.name for view in self.members]

    @property
    def seeds(self) -> list[int]:
        return [view.config.train.seed for view in self.members if view.config is not None]

    @property
    def n(self) -> int:
        return len(self.members)


def seed_groups(views: Iterable[M], key_of: Callable[[M], str] | None = None) -> list[SeedGroup[M]]:
    """The runs grouped by :func:`group_key`, in the order each group's first member comes.

    A group's seeds are distinct: a run repeating a seed already in its group (a rerun of the same
    configuration) stands alone, as does a run without a readable config. ``key_of``: a run's
    :func:`group_key` (a caller that groups the same runs again and again keeps them).

    Labels are distinct: where two groups would read the same (``kl-s0``, ``kl-s1`` on one corpus and
    ``kl-s2``, ``kl-s3`` on another, or beside a lone run ``kl``), a group of several runs adds its first
    member's name and how many more it holds (``kl (kl-s0 +1)``); a lone run keeps its own name. No run
    name holds a space, and each run is in one group, so no two labels can then be the same.
    """
    keyed: dict[str, list[M]] = {}
    for view in views:
        if view.config is None:
            key = f"\0{view.name}"
        elif key_of is not None:
            key = key_of(view)
        else:
            key = group_key(view.config)
        if view.config is not None and any(
            other.config and other.config.train.seed == view.config.train.seed for other in keyed.get(key, [])
        ):
            key = f"\0{view.name}"
        keyed.setdefault(key, []).append(view)
    groups = [_group(key, members) for key, members in keyed.items()]
    labels = Counter(group.label for group in groups)
    return [
        replace(group, label=f"{group.label} ({group.names[0]} +{group.n - 1})")
        if labels[group.label] > 1 and group.n > 1
        else group
        for group in groups
    ]


def _group(key: str, members: list[M]) -> SeedGroup[M]:
    ordered = tuple(sorted(members, key=lambda view: (view.config.train.seed if view.config else 0, view.name)))
    stems = {SEED_SUFFIX.sub("", view.name) for view in ordered}
    label = stems.pop() if len(stems) == 1 and len(ordered) > 1 else ordered[0].name
    return SeedGroup(hashlib.sha256(key.encode()).hexdigest()[:16], label, ordered)


@dataclass
class GroupEpochs:
    """A group's epoch lines, one list per member (in member order), read from ``metrics.jsonl``."""

    names: list[str]
    lines: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def common_epochs(self) -> list[int]:
        """The epochs every member completed."""
        common = set.intersection(*(set(_epochs(lines)) for lines in self.lines)) if self.lines else set()
        return sorted(common)

    def at(self, metric: str, epoch: int) -> list[float]:
        """Each member's finite ``metric`` at ``epoch`` (members lacking it, or diverged to inf/NaN, left out: n counts the rest)."""
        values = []
        for lines in self.lines:
            line = next((line for line in lines if line.get("epoch") == epoch), None)
            if line is not None and isinstance(line.get(metric), (int, float)) and math.isfinite(line[metric]):
                values.append(float(line[metric]))
        return values

    def values(self, metric: str) -> list[list[float]]:
        """``values[member][epoch]`` over the common epochs."""
        epochs = self.common_epochs
        return [[_value(lines, metric, epoch) for epoch in epochs] for lines in self.lines]


def read_group_epochs(checkpoints: Path, names: Sequence[str]) -> GroupEpochs:
    """The epoch lines of the runs ``names`` under ``checkpoints`` (a run without a metrics file has none)."""
    from engine.runs.record import read_run_history

    return GroupEpochs(
        list(names),
        [[line for line in read_run_history(checkpoints, name) if line.get("kind") == "epoch"] for name in names],
    )


def _epochs(lines: list[dict[str, Any]]) -> list[int]:
    """The whole epochs the lines end (an epoch line's ``epoch`` may read back as ``3`` or ``3.0``)."""
    epochs = [line.get("epoch") for line in lines]
    return [int(epoch) for epoch in epochs if isinstance(epoch, (int, float)) and float(epoch).is_integer()]


def _value(lines: list[dict[str, Any]], metric: str, epoch: int) -> float:
    line = next((line for line in lines if line.get("epoch") == epoch), {})
    value = line.get(metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


@dataclass(frozen=True)
class GroupSeries:
    """A group's line on one metric: its mean per x, the band's low and high, and how the x values came about."""

    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    sd: list[float]
    n: int
    interpolated: bool


def aggregate(
    series: Sequence[tuple[Sequence[float], Sequence[float]]], band: BandKind = "minmax", align: bool = True
) -> GroupSeries:
    """The members' ``(x, y)`` series as one mean line with a band: min–max, or mean ± one sample sd (:func:`mean_sd`).

    ``align`` (epochs): the x values every member has, each member's own value there. Otherwise
    (steps, wall time, where members' x values differ) each member is linearly interpolated onto
    the union of the members' x values inside the range they all cover, and the result says
    ``interpolated``. Non-finite values are left out of a point's statistics.
    """
    import numpy as np

    members = [_sorted(np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for x, y in series if len(x)]
    if not members:
        return GroupSeries([], [], [], [], [], 0, not align)
    if align:
        xs = sorted(set.intersection(*(set(x.tolist()) for x, _ in members)))
        columns = [[float(y[x == value][-1]) for x, y in members] for value in xs]
    else:
        start, end = max(float(x.min()) for x, _ in members), min(float(x.max()) for x, _ in members)
        union = np.unique(np.concatenate([x for x, _ in members]))
        xs = [float(value) for value in union if start <= value <= end]
        interpolated = [np.interp(xs, x, y) for x, y in members]
        columns = [[float(values[i]) for values in interpolated] for i in range(len(xs))]
    means, lows, highs, sds = [], [], [], []
    for column in columns:
        finite = [value for value in column if math.isfinite(value)]
        mean, sd = mean_sd(finite)
        low, high = (min(finite), max(finite)) if band == "minmax" and finite else (mean - sd, mean + sd)
        if not math.isfinite(sd) and band == "sd":
            low = high = mean
        means.append(mean)
        sds.append(sd)
        lows.append(low)
        highs.append(high)
    return GroupSeries([float(x) for x in xs], means, lows, highs, sds, len(members), not align)


def _sorted(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    import numpy as np

    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def find_group(views: Sequence[RunView], text: str, checkpoints: Path) -> SeedGroup[RunView]:
    """The seed group labelled ``text``, or the one holding the run ``text``; one sentence when there is none."""
    groups = seed_groups(views)
    found = next((group for group in groups if group.label == text), None) or next(
        (group for group in groups if text in group.names), None
    )
    if found is None:
        raise UserError(
            f"No seed group or run named {text!r} in {str(checkpoints)!r}; 'lm-explorer runs' lists the runs, "
            "and a group is named by any of its runs."
        )
    return found
