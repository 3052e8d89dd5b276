"""The sweep view's maths: each shown run's (or seed group's) final validation value against the setting that varies.

"Final" is the last epoch every shown run has a validation point at (their last common epoch), so
runs that trained longer are compared where the others stopped. The x is a setting whose value
differs among the shown runs (:func:`tui.export.varied`; the seed is left out, since seeds make a
group): the first numeric one, or the one asked for. A seed group
(:func:`engine.runs.groups.seed_groups`) is one point: the mean of its members' values, with their
min–max and sample sd (``s = √(Σ (v_i − v̄)² / (n − 1))``); a member whose value is inf or NaN (diverged) is
left out, and a run or group with none finite has no point. The x axis is log10 when every x is
positive and they span more than a decade (``max x / min x > 10``). No drawing here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.runs.groups import seed_groups
from engine.runs.welch import mean_sd
from tui.export import varied
from tui.plotting import compact, marker
from tui.session import RunState

NOT_ON_X = {"train.seed", "train.epochs", "train.log_every"}  # seeds make the groups; the final epoch is common to all


@dataclass(frozen=True)
class SweepPoint:
    """One run or seed group at the final epoch: its label, how it is drawn, its x and its members' values."""

    label: str
    color: str
    marker: str
    x: float
    values: list[float]

    @property
    def mean(self) -> float:
        return mean_sd(self.values)[0]

    @property
    def sd(self) -> float:
        return mean_sd(self.values)[1]

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def text(self, setting: str) -> str:
        """``#1,2,3 g-w10 · objective.weight 10: 5.85 ± 0.1 (n 3, min–max 5.75–5.95)``, or one run's value."""
        head = f"{self.marker} {self.label} · {setting} {compact(self.x)}: "
        if len(self.values) == 1:
            return head + compact(self.mean)
        spread = f"min–max {compact(self.low)}–{compact(self.high)}"
        return head + f"{compact(self.mean)} ± {compact(self.sd)} (n {len(self.values)}, {spread})"


@dataclass(frozen=True)
class Sweep:
    """What the view draws: the swept setting, the numeric ones it may switch to, every other setting that varies,
    the epoch, the points and whether x is log."""

    setting: str | None
    settings: list[str]
    others: list[str]
    epoch: int | None
    points: list[SweepPoint]
    log_x: bool
    note: str = ""


def varied_settings(runs: list[RunState]) -> tuple[list[str], list[str]]:
    """The settings that vary among ``runs`` (seeds and lengths left out): those that are numbers for every run
    (candidates for the x axis), and the others."""
    from tui.widgets.setup_form import flat_settings

    settings = {run.name: flat_settings(run.config) for run in runs if run.config is not None}
    differing = [key for key in varied(settings) if key not in NOT_ON_X]
    numeric = [key for key in differing if all(_number(values.get(key)) for values in settings.values())]
    return numeric, [key for key in differing if key not in numeric]


def sweep(runs: list[RunState], series: str, setting: str | None = None) -> Sweep:
    """The final value of ``series`` (a validation series) for each shown run or group, against ``setting`` (default:
    the first numeric setting that varies)."""
    runs = [run for run in runs if run.config is not None and run.points(series)]
    candidates, non_numeric = varied_settings(runs)
    if setting not in candidates:
        setting = candidates[0] if candidates else None
    if setting is None:
        note = "No numeric setting differs among the shown runs with validation points."
        return Sweep(None, candidates, non_numeric, None, [], False, note)
    others = [key for key in candidates if key != setting] + non_numeric
    common = set.intersection(*({round(x) for x, _ in run.points(series)} for run in runs))
    if not common:
        return Sweep(setting, candidates, others, None, [], False, "The shown runs have no validation epoch in common.")
    epoch = max(common)
    points = []
    for group in seed_groups(runs):
        lead = group.members[0]
        final = [next(y for x, y in run.points(series) if round(x) == epoch) for run in group.members]
        values = [value for value in final if math.isfinite(value)]  # a diverged member is left out, as in its group's n
        if not values:
            continue
        numbers = ",".join(str(run.number) for run in sorted(group.members, key=lambda run: run.number))
        label = f"#{numbers} {group.label}" if group.n > 1 else f"#{lead.number} {lead.name}"
        points.append(SweepPoint(label, lead.color, marker(lead.number), _setting(lead, setting), values))
    points.sort(key=lambda point: point.x)
    xs = [point.x for point in points]
    log_x = min(xs) > 0 and max(xs) / min(xs) > 10
    return Sweep(setting, candidates, others, epoch, points, log_x)


def _setting(run: RunState, key: str) -> float:
    section, _, name = key.partition(".")
    return float(getattr(getattr(run.config, section), name))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
