"""A grid of runs: lists of values for some settings (weights, seeds, any ``--vary SETTING=V1,V2,…``), and their product.

The CLI's ``sweep`` and the app's form read their lists through here, so both queue the same
grid and bound it with the same sentence. Each value is checked by its setting's own rule
(:meth:`engine.config.settings.Setting.convert`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from engine.config.models import parse_weights
from engine.config.settings import Setting, setting, settings
from engine.errors import UserError

MAX_GRID_RUNS = 256
"""The most runs one grid queues: a typo such as ``--seeds 0-1000`` is a sentence, not a thousand trainer processes."""
WEIGHT, SEED = "objective.weight", "train.seed"
SEED_RANGE = re.compile(r"^(\d{1,19})\s*-\s*(\d{1,19})$")  # a seed has at most 19 digits


@dataclass(frozen=True)
class Axis:
    """One setting of the grid and the values it takes, in the order given."""

    key: str
    values: tuple[Any, ...]

    @property
    def label(self) -> str:
        """``3 weights``, ``2 seeds``, ``2 values of train.lr``."""
        count = len(self.values)
        noun = {WEIGHT: "weight", SEED: "seed"}.get(self.key)
        return f"{count} {noun}{'s' * (count != 1)}" if noun else f"{count} value{'s' * (count != 1)} of {self.key}"


def parse_seeds(text: str, what: str = "--seeds") -> list[int]:
    """Seeds as a list and ranges, ``0-4`` or ``0,2,5`` or ``0-2,7``; each a seed ``train.seed`` allows, none twice."""
    example = "such as 0-4, 0,2,5 or 0-2,7"
    seeds: list[int] = []
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise UserError(f"{what} is empty; give seeds {example}.")
    for part in parts:
        span = SEED_RANGE.fullmatch(part)
        if span:
            first, last = int(span[1]), int(span[2])
            if last < first:
                raise UserError(f"{what} range {part!r} runs backwards; give seeds {example}.")
            if last - first >= MAX_GRID_RUNS:
                raise UserError(f"{what} range {part!r} holds more than {MAX_GRID_RUNS} seeds; give a shorter range.")
            seeds += range(first, last + 1)
        else:
            try:
                seeds.append(setting(SEED).convert(part))
            except UserError:
                raise UserError(f"{what} {part!r} is not {setting(SEED).wanted}.") from None
    for seed in seeds:
        setting(SEED).convert(str(seed))
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{what} {text!r} names a seed twice; give each seed once, {example}.")
    return seeds


def parse_vary(text: str) -> Axis:
    """``SETTING=V1,V2,…`` (``train.lr=1e-3,3e-3``, ``objective.regularizer=kl,entropy``; ``lr=…`` names it by its flag too)."""
    key, sep, values = text.partition("=")
    key = key.strip()
    item = _setting_named(key)
    if not sep or item is None:
        keys = "objective.regularizer, train.lr, model.hidden_size"
        raise UserError(f"--vary {text!r} is not SETTING=V1,V2,…; give a setting's key (such as {keys}) and its values.")
    if item.is_list:
        raise UserError(f"--vary cannot vary {item.key}, a list setting; give it with {item.flag} instead.")
    parts = [part.strip() for part in values.split(",") if part.strip()]
    if not parts:
        raise UserError(f"--vary {item.key}= has no values; give them comma-separated, such as {item.key}=V1,V2.")
    converted = tuple(item.convert(part) for part in parts)
    if len(set(converted)) != len(converted):
        raise UserError(f"--vary {item.key} names a value twice; give each once.")
    return Axis(item.key, converted)


def weight_axis(text: str) -> Axis:
    return Axis(WEIGHT, tuple(parse_weights(text)))


def seed_axis(text: str, what: str = "--seeds") -> Axis:
    return Axis(SEED, tuple(parse_seeds(text, what)))


def grid_points(axes: list[Axis]) -> list[dict[str, Any]]:
    """Every combination of the axes' values (the first axis slowest), as dotted-key overrides; at most :data:`MAX_GRID_RUNS`.

    A setting given on two axes is refused, as is a grid larger than the bound.
    """
    keys = [axis.key for axis in axes]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UserError(f"{repeated[0]} is varied twice; give its values once.")
    count = 1
    for axis in axes:
        count *= len(axis.values)
    if count > MAX_GRID_RUNS:
        raise UserError(
            f"The grid holds {count} runs ({describe(axes)}), more than the {MAX_GRID_RUNS} one grid may queue; give fewer values."
        )
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(axis.values for axis in axes))]


def describe(axes: list[Axis]) -> str:
    """``3 weights × 3 seeds``: what the grid's count is made of."""
    return " × ".join(axis.label for axis in axes) or "one run"


def varying(axes: list[Axis]) -> list[str]:
    """The keys whose value differs between the grid's runs (an axis of one value varies nothing)."""
    return [axis.key for axis in axes if len(axis.values) > 1]


def _setting_named(key: str) -> Setting | None:
    """The setting with dotted ``key``, or whose flag is ``--key`` (``lr``, ``layers``)."""
    return next((item for item in settings() if key in (item.key, item.flag.removeprefix("--"), item.flag)), None)
