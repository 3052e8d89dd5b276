"""Run names: the legal-name rule's check, default names, and a sweep member's name (the CLI and the app alike).

A run's name is its folder's name (:data:`engine.config.models.RUN_NAME_PATTERN`, in words
:data:`~engine.config.models.RUN_NAME_RULE`). A run given no name is called after its objective,
its regularizer's strength and the time (``mse-kl-w10-20261203-141500``). The runs of a grid
named ``NAME`` add what varies: ``NAME-w<weight>`` per weight (``NAME-w10``), ``-s<seed>`` last per
seed (``NAME-w10-s2``), ``-<value>`` for a text setting (``NAME-entropy``) and ``-<setting><value>`` for
a number (``NAME-lr0.003``); unnamed, the default name takes the same parts, the seed after the time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.config.grid import SEED, WEIGHT
from engine.config.models import RUN_NAME_PATTERN, RUN_NAME_RULE, RunConfig
from engine.errors import UserError
from engine.formatting import objective_label


def check_name(name: str, what: str = "Run name") -> str:
    """``name`` if it is a plain run folder name, else the sentence saying what one is."""
    if not RUN_NAME_PATTERN.fullmatch(name):
        raise UserError(f"{what} {name!r} is not a plain folder name: use {RUN_NAME_RULE}.")
    return name


def default_run_name(config: RunConfig, varying: list[str] | None = None) -> str:
    """``<objective>[-w<strength>][-<what else varies>]-<date>-<time>[-s<seed>]``: what the run does, and when it was started."""
    label = objective_label(config.objective).replace(" + ", "-").replace("(", "").replace(")", "")
    weight = f"-w{config.objective.strength:g}" if config.objective.regularizer != "none" else ""
    others = [key for key in varying or [] if key not in (WEIGHT, SEED, "objective.regularizer", "objective.loss")]
    stem = f"{label}{weight}{_parts(config, others)}-{datetime.now():%Y%m%d-%H%M%S}"
    return stem + _parts(config, [SEED] if SEED in (varying or []) else [])


def grid_member_name(name: str, config: RunConfig, varying: list[str]) -> str:
    """The run of grid ``name`` with ``config``: ``name`` and one part per varying setting, the seed last (``name-w10-s2``)."""
    return name + _parts(config, varying)


def grid_names(name: str | None, configs: list[RunConfig], varying: list[str]) -> list[str]:
    """The names a command or form entry starts: ``name`` for one run, a grid member's name per config; default names unnamed."""
    if name is not None and len(configs) <= 1:
        return [name]
    if name is None:
        return [default_run_name(config, varying) for config in configs]
    return [grid_member_name(name, config, varying) for config in configs]


def _parts(config: RunConfig, keys: list[str]) -> str:
    """``-w10``, ``-entropy``, ``-lr0.003``, ``-s2``: one part per key, the seed's last."""
    ordered = [key for key in keys if key != SEED] + [key for key in keys if key == SEED]
    return "".join(f"-{_part(key, _value(config, key))}" for key in ordered)


def _part(key: str, value: Any) -> str:
    if key == WEIGHT:
        return f"w{value:g}"
    if key == SEED:
        return f"s{value}"
    if isinstance(value, str):
        return value
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return key.partition(".")[2].replace("_", "") + shown


def _value(config: RunConfig, key: str) -> Any:
    section, _, field = key.partition(".")
    if key == WEIGHT:
        return config.objective.strength
    return getattr(getattr(config, section), field)
